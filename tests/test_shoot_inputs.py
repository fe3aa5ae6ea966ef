"""Shoot without rendering: presets file, sizes, prompts, A1111 metadata, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from packshot.artifacts.provenance import GENERATED
from packshot.artifacts.shots import (
    Recipe,
    lora_hash,
    parse_parameters,
    read_parameters,
    recipe_from_parameters,
    save_png,
)
from packshot.errors import UsageError
from packshot.shoot import ShootRequest, load_presets, plan_shoot, shoot
from packshot.shoot.presets import FIELDS, SHOTS_FILE, get_preset
from packshot.shoot.prompts import (
    ProductWords,
    check_token_limit,
    compose_prompt,
    insert_product,
    read_prompts_file,
)
from packshot.shoot.render import get_scheduler
from packshot.shoot.sheet import cost_summary, make_contact_sheet, sheet_layout
from packshot.shoot.sizes import ASPECTS, check_size, parse_size, size_for

TEAPOT = ProductWords("sks", "teapot", "blue teapot")
REQUIRED_PRESETS = ("studio", "lifestyle", "on-model", "flat-lay", "in-hand", "detail", "seasonal")


# -- the presets file ------------------------------------------------------------------------


def test_presets_file_is_valid_and_complete() -> None:
    raw = json.loads(SHOTS_FILE.read_text(encoding="utf-8"))
    presets = load_presets()
    assert set(REQUIRED_PRESETS) <= set(presets)
    for name, preset in presets.items():
        entry = raw["presets"][name]
        assert set(FIELDS) <= set(entry), name
        assert entry.get("_comment"), f"{name} must say where its wording comes from"
        assert preset.aspect in ASPECTS, name
        assert 1 <= preset.count <= 16, name
        assert "{description}" in preset.prompt, name
        assert preset.negative_prompt and preset.label and preset.description, name


def test_every_preset_fits_the_text_encoder() -> None:
    """A preset's own words must leave room for a merchant's description in CLIP's 75 tokens."""
    from packshot.models.families import get_family
    from packshot.models.standins import build_clip_tokenizer

    tokenizer = build_clip_tokenizer()
    limit = get_family("sd15").prompt_token_limit(tokenizer)
    for preset in load_presets().values():
        composed = compose_prompt(
            "{product} on a marble kitchen counter next to a bowl of lemons",
            TEAPOT,
            preset_prompt=preset.prompt,
            preset_negative_prompt=preset.negative_prompt,
        )
        assert check_token_limit(composed.prompt, tokenizer, limit) is None, preset.name
        assert check_token_limit(composed.negative_prompt, tokenizer, limit) is None, preset.name


def test_merchant_presets_file_merges_on_top(tmp_path: Path) -> None:
    extra = tmp_path / "mine.json"
    new = {
        "label": "Kitchen",
        "description": "On a kitchen counter.",
        "prompt": "photo of {description}, kitchen counter, morning light",
        "negative_prompt": "blurry",
        "aspect": "16:9",
        "count": 2,
    }
    extra.write_text(json.dumps({"presets": {"kitchen": new, "studio": {"count": 8}}}))
    presets = load_presets(extra)
    assert presets["kitchen"].aspect == "16:9" and presets["kitchen"].source == str(extra)
    assert presets["studio"].count == 8  # only the field given changes
    assert presets["studio"].prompt == load_presets()["studio"].prompt


@pytest.mark.parametrize(
    ("name", "entry", "message"),
    [
        ("kitchen", {"prompt": "photo of {description}"}, "`kitchen` in .* is missing `label`"),
        ("studio", {"aspect": "2:1"}, "`studio` .*`aspect` must be one of 1:1, 4:5, 3:4, 16:9"),
        ("studio", {"count": 0}, "`studio` .*`count` must be 1 to 16"),
        ("studio", {"count": "four"}, "`studio` .*`count` must be a number"),
        ("studio", {"prompt": "a nice photo"}, "`studio` .*`prompt` must say where"),
        ("studio", {"lens": "85mm"}, "`studio` .*unknown field.*`lens`"),
    ],
)
def test_bad_presets_file_names_preset_and_field(
    tmp_path: Path, name: str, entry: dict[str, object], message: str
) -> None:
    extra = tmp_path / "mine.json"
    extra.write_text(json.dumps({"presets": {name: entry}}))
    with pytest.raises(UsageError, match=message):
        load_presets(extra)


def test_presets_file_not_json_or_missing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_presets(broken)
    with pytest.raises(UsageError, match="not found"):
        load_presets(tmp_path / "nope.json")


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as error:
        get_preset(load_presets(), "studo")
    assert "Did you mean `studio`?" in str(error.value)
    for name in REQUIRED_PRESETS:
        assert name in str(error.value)


# -- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [512, 768, 1024])
def test_sizes_keep_the_native_area_in_multiples_of_8(resolution: int) -> None:
    for aspect, (w, h) in ASPECTS.items():
        width, height = size_for(aspect, resolution)
        assert width % 8 == 0 and height % 8 == 0, aspect
        assert abs(width * height / resolution**2 - 1) < 0.03, aspect
        assert abs(width / height - w / h) < 0.03, aspect
    assert size_for("1:1", 512) == (512, 512)
    assert size_for("16:9", 1024) == (1368, 768)


def test_impossible_sizes_and_aspects_are_refused() -> None:
    with pytest.raises(UsageError, match="multiple of 8, but is 500. Use 496 or 504"):
        check_size(500, 512, 512)
    with pytest.raises(UsageError, match="between 64 and 4096"):
        check_size(32, 512, 512)
    with pytest.raises(UsageError, match="WIDTHxHEIGHT"):
        parse_size("big")
    with pytest.raises(UsageError, match="Unknown aspect ratio `2:1`. Choose one of: 1:1"):
        size_for("2:1", 512)
    assert check_size(512, 512, 512) == []
    assert "duplicated" in check_size(1024, 1024, 512)[0]


# -- prompts ---------------------------------------------------------------------------------


def test_product_placeholder_and_added_product() -> None:
    assert insert_product("{product} on a table", TEAPOT) == ("sks teapot on a table", [])
    assert insert_product("sks teapot in snow", TEAPOT) == ("sks teapot in snow", [])
    text, warnings = insert_product("a Teapot in the snow", TEAPOT)
    assert text == "a sks Teapot in the snow" and "not its token `sks`" in warnings[0]
    text, warnings = insert_product("walking in the park", TEAPOT)
    assert text == "a photo of sks teapot, walking in the park"
    assert "doesn't mention the product" in warnings[0] and "{product}" in warnings[0]
    base = ProductWords(None, "teapot")
    assert insert_product("{product} on a table", base) == ("teapot on a table", [])
    with pytest.raises(UsageError, match="empty"):
        insert_product("   ", TEAPOT)


def test_preset_wraps_the_description_and_negatives_merge() -> None:
    studio = load_presets()["studio"]
    composed = compose_prompt(
        "{product} on a marble table",
        TEAPOT,
        preset_prompt=studio.prompt,
        preset_negative_prompt=studio.negative_prompt,
        negative_prompt="Blurry, handle broken",
    )
    assert composed.prompt.startswith("professional studio product photo of sks teapot on a marble")
    assert composed.negative_prompt.startswith(studio.negative_prompt)
    assert composed.negative_prompt.endswith(", handle broken")  # "Blurry" was there already
    assert composed.negative_prompt.lower().count("blurry") == 1


def test_over_long_prompt_warns_and_says_what_was_cut() -> None:
    from packshot.models.families import get_family
    from packshot.models.standins import build_clip_tokenizer

    tokenizer = build_clip_tokenizer()
    limit = get_family("sd15").prompt_token_limit(tokenizer)
    assert limit == 75  # CLIP's 77, less the start and end markers
    words = ", ".join(["golden hour light"] * 30) + ", purple elephant at the very end"
    warning = check_token_limit(words, tokenizer, limit)
    assert warning is not None
    assert "reads only 75" in warning and "purple elephant at the very end" in warning
    assert check_token_limit("sks teapot on a table", tokenizer, limit) is None


def test_prompts_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("# my shots\n{product} on a table\n\n  {product} in snow  \n")
    assert read_prompts_file(path) == ["{product} on a table", "{product} in snow"]
    with pytest.raises(UsageError, match="Prompts file not found: .*one description per line"):
        read_prompts_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="holds no descriptions"):
        read_prompts_file(tmp_path / "empty.txt")


# -- metadata --------------------------------------------------------------------------------


def test_a1111_parameters_round_trip(tmp_path: Path) -> None:
    recipe = Recipe(
        prompt="photo of sks teapot, soft light, 85mm: f/2",
        negative_prompt="blurry, lowres",
        num_inference_steps=25,
        sampler="DPM++ 2M Karras",
        guidance_scale=7.0,
        seed=123,
        width=512,
        height=640,
        model="stable-diffusion-v1-5",
        lora_hashes={"teapot": "0123456789ab"},
        lora_scale=0.8,
    )
    text = recipe.to_parameters()
    assert text.splitlines()[1] == "Negative prompt: blurry, lowres"
    assert "Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.0, Seed: 123, Size: 512x640" in text
    assert 'Lora hashes: "teapot: 0123456789ab"' in text
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "a.png", text, source_type=GENERATED)
    assert read_parameters(path) == text
    assert recipe_from_parameters(read_parameters(path) or "") == recipe


def test_parses_an_automatic1111_infotext() -> None:
    """Text as A1111 1.x writes it, with keys packshot doesn't write itself."""
    text = (
        "masterpiece, a red sneaker on a rock\nNegative prompt: ugly, (worst quality:1.4)\n"
        "Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 42, "
        "Size: 768x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
        'Lora hashes: "shoe: a1b2c3d4e5f6, style: 0f0f0f0f0f0f", Version: v1.10.1'
    )
    values = parse_parameters(text)
    assert values["prompt"] == "masterpiece, a red sneaker on a rock"
    assert values["negative_prompt"] == "ugly, (worst quality:1.4)"
    assert values["Sampler"] == "Euler a" and values["Seed"] == "42"
    assert values["Model hash"] == "6ce0161689"
    recipe = recipe_from_parameters(text)
    assert recipe.lora_hashes == {"shoe": "a1b2c3d4e5f6", "style": "0f0f0f0f0f0f"}
    assert (recipe.width, recipe.height, recipe.guidance_scale) == (768, 512, 6.5)


def test_lora_hash_ignores_the_header(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    save_file(tensors, str(tmp_path / "a.safetensors"), metadata={"note": "one"})
    save_file(tensors, str(tmp_path / "b.safetensors"), metadata={"note": "another, longer"})
    assert lora_hash(tmp_path / "a.safetensors") == lora_hash(tmp_path / "b.safetensors")
    assert len(lora_hash(tmp_path / "a.safetensors")) == 12


def test_schedulers_by_either_name() -> None:
    assert get_scheduler("DPM++ 2M Karras").name == "dpmpp_2m_karras"
    assert get_scheduler("euler_a").class_name == "EulerAncestralDiscreteScheduler"
    with pytest.raises(UsageError, match="Unknown scheduler `heun2`. Choose one of: "):
        get_scheduler("heun2")


# -- the contact sheet and the cost ------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "columns", "rows"), [(1, 1, 1), (4, 2, 2), (5, 3, 2), (10, 4, 3)]
)
def test_contact_sheet_grid(count: int, columns: int, rows: int) -> None:
    shots = [
        (Image.new("RGB", (512, 640), (i * 20, 0, 0)), f"studio · seed {i}") for i in range(count)
    ]
    layout = sheet_layout([image.size for image, _ in shots])
    assert (layout.columns, layout.rows) == (columns, rows)
    assert (layout.cell_width, layout.cell_height) == (205, 256)  # 512x640 fitted in 256
    assert make_contact_sheet(shots).size == (layout.width, layout.height)


def test_cost_per_image() -> None:
    cost = cost_summary([3.6, 3.6], gpu_price_per_hour=2.0, studio_price_per_photo=10.0)
    assert cost["device_seconds_per_image"] == 3.6
    assert cost["cost_per_image"] == pytest.approx(0.002)
    assert cost["images_per_studio_photo"] == 5000


# -- bad requests, refused before any model is loaded -------------------------------------------


def test_a_folder_that_is_not_a_packshot_model(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(UsageError, match="is not a packshot model: it has no packshot.json"):
        plan_shoot(ShootRequest(tmp_path, ["{product}"]), cache_dir=cache_dir)
    with pytest.raises(UsageError, match="Model folder not found"):
        plan_shoot(ShootRequest(tmp_path / "nope", ["{product}"]), cache_dir=cache_dir)
    from packshot.models.load import resolve_model

    base = resolve_model("tiny", cache_dir=cache_dir).path
    with pytest.raises(UsageError, match="diffusers base model: shoot with it alone with --base"):
        plan_shoot(ShootRequest(base, ["{product}"]), cache_dir=cache_dir)
    (tmp_path / "packshot.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(
        UsageError, match="is not a packshot model: its packshot.json is not a trained"
    ):
        plan_shoot(ShootRequest(tmp_path, ["{product}"]), cache_dir=cache_dir)


def test_bad_requests_on_a_base_model(tmp_path: Path, cache_dir: Path) -> None:
    def plan(**fields: object) -> object:
        values: dict[str, object] = {"descriptions": ["{product} on a table"], "product": "teapot"}
        values.update(fields)
        return plan_shoot(ShootRequest(None, base="tiny", **values), cache_dir=cache_dir)

    with pytest.raises(UsageError, match="Unknown shot preset `nope`. Known presets: studio"):
        plan(presets=["nope"])
    with pytest.raises(UsageError, match="multiple of 8"):
        plan(size="100x64")
    with pytest.raises(UsageError, match="Unknown aspect ratio `5:4`"):
        plan(aspect="5:4")
    with pytest.raises(UsageError, match="Prompts file not found"):
        plan(prompts_file=tmp_path / "missing.txt")
    with pytest.raises(UsageError, match="`lora_scale` must be between 0.0 and 2.0"):
        plan(lora_scale=5.0)
    with pytest.raises(UsageError, match="`num_inference_steps` must be between 1 and 150"):
        plan(num_inference_steps=0)
    with pytest.raises(UsageError, match="Describe at least one shot"):
        plan(descriptions=[])
    with pytest.raises(UsageError, match="needs `product`"):
        plan_shoot(ShootRequest(None, ["{product}"], base="tiny"), cache_dir=cache_dir)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shoot.json").write_text("{}")
    with pytest.raises(UsageError, match="already holds a shoot"):
        shoot(ShootRequest(None, ["{product}"], base="tiny", product="x"), tmp_path / "out")


def test_plan_seeds_sizes_and_counts(cache_dir: Path) -> None:
    plan = plan_shoot(
        ShootRequest(
            None,
            ["{product} on a table", "{product} in snow"],
            base="tiny",
            product="teapot",
            presets=["studio", "lifestyle"],
            seed=7,
        ),
        cache_dir=cache_dir,
    )
    studio, lifestyle = load_presets()["studio"], load_presets()["lifestyle"]
    assert len(plan.shots) == 2 * (studio.count + lifestyle.count)
    assert [s.seed for s in plan.shots[: studio.count]] == list(range(7, 7 + studio.count))
    assert {(s.width, s.height) for s in plan.shots if s.preset == "lifestyle"} == {
        size_for(lifestyle.aspect, 64)  # the tiny stand-in's own resolution
    }
    assert len({s.stem for s in plan.shots}) == len(plan.shots)
