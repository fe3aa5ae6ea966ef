"""The shot planner: description x preset x count, seeds and file names, the limits (and the
API's schemas reading them), and the one place a first seed is drawn."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import packshot
from packshot.api.schemas import SceneFields, ShootCreate
from packshot.errors import UsageError
from packshot.shoot.plan import (
    JOB_MAX_BEST,
    JOB_MAX_COUNT,
    LIMITS,
    MAX_FIRST_SEED,
    MAX_SEED,
    check_limits,
    draw_seed,
    plan_shots,
    presets_named,
)
from packshot.shoot.prompts import ProductWords
from packshot.shoot.sizes import size_for

PRODUCT = ProductWords("sks", "teapot", "blue teapot")


def test_description_x_preset_x_count_with_seeds_and_names() -> None:
    presets = presets_named(["studio", "lifestyle"])
    shots, warnings = plan_shots(
        ["{product} on a table", "on a shelf"],
        presets,
        PRODUCT,
        first_seed=7,
        count=2,
        aspect=None,
        negative_prompt=None,
        size=lambda aspect: size_for(aspect, 64),
    )
    assert [s.stem for s in shots[:4]] == [
        "000-studio-seed7",
        "001-studio-seed8",
        "002-lifestyle-seed7",
        "003-lifestyle-seed8",
    ]
    assert len(shots) == 2 * 2 * 2 and [s.index for s in shots] == list(range(8))
    assert {(s.width, s.height) for s in shots if s.preset == "lifestyle"} == {size_for("4:5", 64)}
    assert all("sks teapot" in s.prompt for s in shots)
    assert len(warnings) == 1 and "on a shelf" in warnings[0]  # the product was put in


def test_defaults_labels_and_seeds_wrapping_past_the_range() -> None:
    shots, _ = plan_shots(
        ["{product}"],
        [None],
        PRODUCT,
        first_seed=MAX_SEED,
        count=None,
        aspect=None,
        negative_prompt="blurry",
        size=lambda aspect: (64, 64) if aspect == "1:1" else (0, 0),
        label=lambda preset: "place-hero",
    )
    assert [s.seed for s in shots] == [MAX_SEED, 0, 1, 2]  # 4 shots by default
    assert shots[1].stem == "001-place-hero-seed0" and shots[0].negative_prompt == "blurry"
    assert {(s.aspect, s.width, s.height) for s in shots} == {("1:1", 64, 64)}


def test_limits_name_the_bad_value() -> None:
    class Request:
        count = 3
        num_inference_steps = 151
        seed = None

    with pytest.raises(UsageError, match=r"`num_inference_steps` must be between 1 and 150"):
        check_limits(Request())
    Request.num_inference_steps = 2
    Request.seed = MAX_SEED + 1
    with pytest.raises(UsageError, match=r"`seed` must be between 0 and 4294967295"):
        check_limits(Request())


def test_drawn_seeds_leave_room_for_a_shoot() -> None:
    seeds = {draw_seed() for _ in range(200)}
    assert len(seeds) > 190 and all(0 <= s < MAX_FIRST_SEED for s in seeds)
    assert MAX_FIRST_SEED + LIMITS["count"][1] <= MAX_SEED  # seed + i never wraps


def test_the_api_takes_its_limits_from_the_planner() -> None:
    fields = SceneFields.model_fields
    assert _bounds(fields["num_inference_steps"]) == LIMITS["num_inference_steps"]
    assert _bounds(fields["guidance_scale"]) == LIMITS["guidance_scale"]
    assert _bounds(fields["seed"]) == (0, MAX_FIRST_SEED)
    assert _bounds(fields["count"]) == (1, JOB_MAX_COUNT)
    assert LIMITS["count"][1] >= JOB_MAX_COUNT
    assert _bounds(ShootCreate.model_fields["best"]) == (1, JOB_MAX_BEST)


def test_seeds_are_drawn_in_one_place() -> None:
    """No module but the planner draws a random seed (secrets/random), so all draw alike."""
    root = Path(packshot.__file__).parent
    drawing = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("randbelow", "randint")
                and isinstance(node.value, ast.Name)
                and node.value.id in ("secrets", "random")
            ):
                drawing.append(str(path.relative_to(root)))
    assert drawing == ["shoot/plan.py"]


def _bounds(field: object) -> tuple[float, float]:
    low = high = None
    for item in getattr(field, "metadata", []):
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    assert low is not None and high is not None
    return low, high
