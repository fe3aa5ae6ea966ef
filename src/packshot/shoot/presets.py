"""Shot presets: load `presets/shots.json`, merge a merchant's own file on top, validate them."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packshot.errors import UsageError
from packshot.shoot.prompts import DESCRIPTION_PLACEHOLDER
from packshot.shoot.sizes import ASPECTS

SHOTS_FILE = Path(__file__).resolve().parents[1] / "presets" / "shots.json"
FIELDS: dict[str, type] = {
    "label": str,
    "description": str,
    "prompt": str,
    "negative_prompt": str,
    "aspect": str,
    "count": int,
}
MAX_COUNT = 16  # shots per description a preset may ask for by default


@dataclass(frozen=True)
class ShotPreset:
    """One kind of shot a merchant picks by name ("studio", "lifestyle", …)."""

    name: str
    label: str  # for people: "Studio on white"
    description: str  # one sentence for `packshot presets`
    prompt: str  # wraps the merchant's words, written where `{description}` stands
    negative_prompt: str
    aspect: str  # one of sizes.ASPECTS
    count: int  # shots per description by default
    source: str  # the file it came from (the last one that changed it)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"Shot presets file not found: {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Can't read the shot presets file {path} ({error}).") from None
    except ValueError as error:
        raise UsageError(f"The shot presets file {path} is not valid JSON: {error}.") from None
    presets = data.get("presets") if isinstance(data, dict) else None
    if not isinstance(presets, dict):
        raise UsageError(
            f'The shot presets file {path} must hold {{"presets": {{"NAME": {{...}}}}}}: '
            "an object named `presets` with one entry per preset."
        )
    return presets


def _check(name: str, values: dict[str, Any], path: Path) -> ShotPreset:
    """One preset's fields, checked; the UsageError names the preset, the field and the file."""
    where = f"Shot preset `{name}` in {path}"
    missing = [f for f in FIELDS if f not in values]
    if missing:
        raise UsageError(f"{where} is missing {', '.join(f'`{f}`' for f in missing)}.")
    unknown = [f for f in values if f not in FIELDS and not f.startswith("_")]
    if unknown:
        raise UsageError(
            f"{where} has unknown field(s) {', '.join(f'`{f}`' for f in unknown)}; "
            f"the fields are {', '.join(FIELDS)} (and `_comment`)."
        )
    for field_name, kind in FIELDS.items():
        value = values[field_name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UsageError(
                f"{where}: `{field_name}` must be {'a number' if kind is int else 'text'}, "
                f"not {json.dumps(value)}."
            )
    if values["aspect"] not in ASPECTS:
        raise UsageError(
            f"{where}: `aspect` must be one of {', '.join(ASPECTS)}, not `{values['aspect']}`."
        )
    if not 1 <= values["count"] <= MAX_COUNT:
        raise UsageError(f"{where}: `count` must be 1 to {MAX_COUNT}, not {values['count']}.")
    if DESCRIPTION_PLACEHOLDER not in values["prompt"]:
        raise UsageError(
            f"{where}: `prompt` must say where the merchant's words go with "
            f'{DESCRIPTION_PLACEHOLDER}, e.g. "photo of {DESCRIPTION_PLACEHOLDER}, soft light".'
        )
    if not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(
            f"{where}: a preset name may hold letters, digits, - and _ only (it names files)."
        )
    fields = {f: values[f] for f in FIELDS}
    return ShotPreset(name=name, source=str(path), **fields)


def load_presets(extra_file: Path | str | None = None) -> dict[str, ShotPreset]:
    """The built-in shot presets, with the merchant's `extra_file` merged on top.

    In `extra_file`, a preset with a new name needs every field; one with a built-in name
    replaces only the fields it gives.
    """
    raw: dict[str, tuple[dict[str, Any], Path]] = {
        name: (dict(values), SHOTS_FILE) for name, values in _read(SHOTS_FILE).items()
    }
    if extra_file is not None:
        extra = Path(extra_file)
        for name, values in _read(extra).items():
            if not isinstance(values, dict):
                raise UsageError(f"Shot preset `{name}` in {extra} must be an object of fields.")
            merged = {**raw[name][0], **values} if name in raw else dict(values)
            raw[name] = (merged, extra)
    return {name: _check(name, values, path) for name, (values, path) in raw.items()}


def get_preset(presets: dict[str, ShotPreset], name: str) -> ShotPreset:
    """The preset called `name`; a UsageError listing the known ones if there is none."""
    if name in presets:
        return presets[name]
    close = difflib.get_close_matches(name, list(presets), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    raise UsageError(
        f"Unknown shot preset `{name}`.{hint} Known presets: {', '.join(presets)} "
        "(`packshot presets` describes them)."
    )
