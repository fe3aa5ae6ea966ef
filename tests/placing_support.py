"""Pixel-true mode test material: synthetic product photos with a known mask, a small ONNX
background-removal model built offline, and plain-numpy checks of the pixel guarantee."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from packshot.artifacts.shots import sidecar_path
from packshot.place import GUARANTEE_BAND_PX, compose

PRODUCT_RGB = (200, 40, 40)


def product_photo(
    size: tuple[int, int] = (320, 240),
    box: tuple[int, int, int, int] = (100, 60, 230, 200),
    seed: int = 0,
) -> tuple[Image.Image, np.ndarray]:
    """A red, textured ellipse on a soft beige-to-grey gradient, and its exact 0/1 mask."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([230 - 0.1 * y, 222 - 0.05 * x, 205 + 0 * x], -1)
    pixels = np.clip(background + rng.normal(0, 2, (height, width, 3)), 0, 255)
    mask_image = Image.new("L", size, 0)
    ImageDraw.Draw(mask_image).ellipse(box, fill=255)
    mask = (np.asarray(mask_image) > 127).astype(np.uint8)
    # The product: red with darker stripes (a texture, so "product pixels" are not one colour).
    stripes = 0.75 + 0.25 * (np.sin(x / 3.0) > 0)
    product = np.stack([PRODUCT_RGB[0] * stripes, 40 + 0 * x, 40 + 10 * (y % 7 == 0)], -1)
    pixels = np.where(mask[..., None] > 0, product, pixels)
    return Image.fromarray(pixels.astype(np.uint8)), mask


def write_photo(folder: Path, name: str = "photo.png", **kwargs: object) -> tuple[Path, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = product_photo(**kwargs)  # type: ignore[arg-type]
    path = folder / name
    image.save(path)
    return path, mask


def erode_square(mask: np.ndarray, band: int) -> np.ndarray:
    """`mask` eroded by `band` px with a square, edges replicated: a plain numpy min filter,
    written apart from packshot's own (cv2) so that the test checks it."""
    padded = np.pad(mask.astype(bool), band, mode="edge")
    h, w = mask.shape
    out = np.ones((h, w), bool)
    for dy in range(2 * band + 1):
        for dx in range(2 * band + 1):
            out &= padded[dy : dy + h, dx : dx + w]
    return out


def first_shot_keeps_the_product(placed_dir: Path, photo: Path) -> dict[str, Any]:
    """Check the pixel guarantee on the first shot `packshot place` wrote into `placed_dir`
    from `photo`: the product's core (its placed mask less the guarantee band) is the photo's
    own pixels. Returns that shot's sidecar."""
    shot = sorted(placed_dir.glob("0*.png"))[0]
    sidecar = json.loads(sidecar_path(shot).read_text())
    image = np.asarray(Image.open(shot).convert("RGB"))
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    mask = (np.asarray(Image.open(placed_dir / "product" / "mask.png")) > 127).astype(np.uint8)
    placement, _ = compose.place_product(
        pixels, mask, image.shape[1::-1], compose.get_composition(sidecar["composition"])
    )
    inner = erode_square(placement.mask, GUARANTEE_BAND_PX)
    assert inner.sum() > 20, "the product's core is too small to check"
    assert np.array_equal(image[inner], placement.rgb[inner]), "the product's pixels changed"
    return sidecar


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


def build_matting_onnx(path: Path, size: int = 64, *, logits: bool = False) -> Path:
    """A small background-removal model in ONNX, built offline with `onnx.helper`.

    It takes (1, 3, size, size) normalised the U2-Net way (ImageNet mean and std) and answers
    (1, 1, size, size): high where red stands out from green (as PRODUCT_RGB does against a
    beige or grey background), through a sigmoid unless `logits` (as BiRefNet answers). A 1x1
    convolution: w·(r − g) + b, with w = 5 and b = −6 (r − g is about 2.6 on the product and
    about 0 on the backgrounds after normalisation).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.array([5.0, -5.0, 0.0], np.float32).reshape(1, 3, 1, 1)
    bias = np.array([-6.0], np.float32)
    nodes = [helper.make_node("Conv", ["input.1", "w", "b"], ["logits"])]
    nodes.append(
        helper.make_node("Identity", ["logits"], ["mask"])
        if logits
        else helper.make_node("Sigmoid", ["logits"], ["mask"])
    )
    graph = helper.make_graph(
        nodes,
        "matting",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, size, size])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
