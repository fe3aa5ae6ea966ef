"""Composition: the pixel guarantee on many masks and canvases, placement, presets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from packshot.errors import UsageError
from packshot.place import GUARANTEE_BAND_PX, compose
from packshot.shoot.presets import load_presets
from packshot.shoot.sizes import size_for
from placing_support import erode_square


def _masks(size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Masks of the shapes a cut-out gives: round, with a hole, thin, in pieces, at the edge."""
    w, h = size
    shapes = {}
    for name in ("ellipse", "ring", "thin", "pieces", "edge"):
        image = Image.new("L", size, 0)
        draw = ImageDraw.Draw(image)
        if name == "ellipse":
            draw.ellipse((w * 0.3, h * 0.2, w * 0.7, h * 0.85), fill=255)
        elif name == "ring":  # a mug handle, a ring: the hole is background
            draw.ellipse((w * 0.2, h * 0.2, w * 0.8, h * 0.8), fill=255)
            draw.ellipse((w * 0.4, h * 0.4, w * 0.6, h * 0.6), fill=0)
        elif name == "thin":  # a pen: parts thinner than the band have no core at all
            draw.line((w * 0.1, h * 0.9, w * 0.9, h * 0.1), fill=255, width=9)
            draw.line((w * 0.1, h * 0.1, w * 0.5, h * 0.5), fill=255, width=3)
        elif name == "pieces":  # a pair of earrings
            draw.rectangle((w * 0.1, h * 0.3, w * 0.35, h * 0.7), fill=255)
            draw.polygon([(w * 0.6, h * 0.2), (w * 0.9, h * 0.5), (w * 0.6, h * 0.8)], fill=255)
        else:  # cut off by the photo's bottom and right edges
            draw.rectangle((w * 0.5, h * 0.4, w, h), fill=255)
        shapes[name] = (np.asarray(image) > 127).astype(np.uint8)
    return shapes


def _photo(size: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


MASK_NAMES = ["ellipse", "ring", "thin", "pieces", "edge"]
ASPECTS = ["1:1", "4:5", "16:9", "9:16"]


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("mask_name", MASK_NAMES)
def test_guarantee_when_placed(mask_name: str, aspect: str) -> None:
    """Inside the placed mask eroded by the band, the output is the placed product exactly,
    whatever the scene: here random noise, the worst case for any blending."""
    size = (300, 220)
    photo, mask = _photo(size, seed=1), _masks(size)[mask_name]
    canvas = size_for(aspect, 256)
    for composition in compose.load_compositions()[0].values():
        placement, _ = compose.place_product(photo, mask, canvas, composition)
        scene = _photo(canvas, seed=2)
        shaded = compose.add_shadow(scene, placement, composition.shadow)
        out = compose.composite(shaded, placement)
        assert out.shape == (canvas[1], canvas[0], 3)
        inner = erode_square(placement.mask, GUARANTEE_BAND_PX)
        assert np.array_equal(out[inner], placement.rgb[inner])
        assert inner.sum() > 0 or mask_name == "thin"
        # Outside the mask the scene (with its shadow) shows, untouched by the product.
        outside = placement.mask == 0
        assert np.array_equal(out[outside], shaded[outside])


@pytest.mark.parametrize("mask_name", MASK_NAMES)
def test_guarantee_with_keep_framing_is_the_photo_itself(mask_name: str) -> None:
    size = (256, 192)
    photo, mask = _photo(size, seed=3), _masks(size)[mask_name]
    placement = compose.keep_framing(photo, mask)
    assert placement.scale == 1.0 and placement.canvas == size
    out = compose.composite(_photo(size, seed=4), placement)
    inner = erode_square(mask, GUARANTEE_BAND_PX)
    assert np.array_equal(out[inner], photo[inner])


def test_the_band_is_blended_and_at_most_4_px() -> None:
    assert 1 <= GUARANTEE_BAND_PX <= 4
    size = (200, 200)
    photo = np.full((200, 200, 3), 250, np.uint8)
    mask = _masks(size)["ellipse"]
    placement = compose.keep_framing(photo, mask)
    out = compose.composite(np.zeros_like(photo), placement)
    band = (mask > 0) & ~erode_square(mask, GUARANTEE_BAND_PX)
    # The edge pixels take some of the dark scene (feathering and light wrap) ...
    assert out[band].mean() < 250
    # ... and the core none of it.
    assert (out[erode_square(mask, GUARANTEE_BAND_PX)] == 250).all()


def test_generation_mask_paints_everything_but_the_core() -> None:
    size = (160, 120)
    placement = compose.keep_framing(_photo(size, 5), _masks(size)["ellipse"])
    paint = compose.generation_mask(placement)
    inner = erode_square(placement.mask, GUARANTEE_BAND_PX)
    assert set(np.unique(paint)) == {0, 255}
    assert np.array_equal(paint == 0, inner)


def test_placement_follows_the_composition() -> None:
    size = (400, 300)
    photo, mask = _photo(size, 6), _masks(size)["ellipse"]
    compositions, _ = compose.load_compositions()
    hero, placement_box = compositions["hero"], None
    placement, warnings = compose.place_product(photo, mask, (512, 512), hero)
    x, y, w, h = placement.box
    placement_box = placement.box
    assert warnings == []
    # The box fills 70% of the binding side and its middle sits at the composition's centre.
    assert max(w, h) == pytest.approx(hero.fill * 512, abs=2)
    assert x + w / 2 == pytest.approx(hero.centre[0] * 512, abs=2)
    assert y + h / 2 == pytest.approx(hero.centre[1] * 512, abs=2)
    thirds, _ = compose.place_product(photo, mask, (512, 512), compositions["thirds"])
    assert thirds.box[0] + thirds.box[2] / 2 == pytest.approx(0.667 * 512, abs=2)
    assert thirds.box[2] < placement_box[2]
    assert placement.to_dict()["scale"] == pytest.approx(placement.scale, abs=1e-6)


def test_a_small_product_is_not_blown_up() -> None:
    photo = _photo((100, 100), 7)
    mask = np.zeros((100, 100), np.uint8)
    mask[45:55, 45:55] = 1
    placement, warnings = compose.place_product(
        photo, mask, (512, 512), compose.get_composition("hero")
    )
    assert placement.scale == compose.MAX_UPSCALE
    assert any("only 10x10 px" in w for w in warnings)


def test_a_long_product_on_a_tall_canvas_gets_a_warning() -> None:
    photo = _photo((600, 100), 8)
    mask = np.zeros((100, 600), np.uint8)
    mask[45:55, 10:590] = 1  # a ruler
    _, warnings = compose.place_product(photo, mask, (384, 680), compose.get_composition("hero"))
    assert any("aspect closer" in w for w in warnings)


def test_every_composition_preset_is_a_shot_preset() -> None:
    compositions, by_preset = compose.load_compositions()
    shot_presets = load_presets()
    assert set(by_preset) <= set(shot_presets)
    assert set(by_preset.values()) <= set(compositions)
    assert {"hero", "thirds", "flat-lay"} <= set(compositions)
    assert compose.composition_for_preset("flat-lay").shadow == "drop"
    with pytest.raises(UsageError, match="held or worn"):
        compose.composition_for_preset("in-hand")
    with pytest.raises(UsageError, match="Unknown composition"):
        compose.get_composition("diagonal")
