"""A shot list: the shots every product of a catalogue gets (words or a preset, aspect, count,
marketplace slot), read from a small YAML or JSON file (`examples/shot-list.yaml`) or the
studio's form, and checked before anything runs.

Light (no torch): the API's request body and the studio's form read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from packshot.errors import UsageError
from packshot.shoot.plan import JOB_MAX_COUNT
from packshot.shoot.presets import load_presets
from packshot.shoot.sizes import ASPECTS

# The marketplace slot a shot fills (the delivery step's names): the listing's main image, the
# images after it, and the lifestyle image some feeds take apart (Google's lifestyle_image_link).
SLOTS: dict[str, str] = {
    "main": "Main image",
    "additional": "Additional image",
    "lifestyle": "Lifestyle image",
}
MAX_SHOTS = 20  # shots in one list: 20 x up to 16 images per product is already a day of GPU
MAX_DESCRIPTION = 500  # characters, as the studio's shoot form
ENTRY_FIELDS = ("name", "slot", "description", "preset", "aspect", "count")


@dataclass(frozen=True)
class ShotListEntry:
    """One shot of the list: what to show (a description, a preset or both), its aspect, how
    many images, and the marketplace slot they fill."""

    name: str  # its folder in each product's shots: "main", "lifestyle-kitchen"
    slot: str  # one of SLOTS
    description: str | None = None  # "{product} on a marble table"; none: the preset alone
    preset: str | None = None  # a shot preset ("studio", "lifestyle", …)
    aspect: str | None = None  # one of ASPECTS; none: the preset's, else 1:1
    count: int = 1  # images of this shot per product

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShotList:
    """The shots every product of a catalogue gets, in order (the main image first)."""

    shots: tuple[ShotListEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"shots": [entry.to_dict() for entry in self.shots]}

    @property
    def images_per_product(self) -> int:
        return sum(entry.count for entry in self.shots)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "the shot list") -> ShotList:
        """A checked shot list from `{"shots": [{...}, ...]}`; every mistake named with its shot."""
        if not isinstance(data, dict) or not isinstance(data.get("shots"), list):
            raise UsageError(
                f'{where} must hold `shots:`, a list of shots such as {{"slot": "main", '
                '"preset": "studio"}} (see examples/shot-list.yaml).'
            )
        unknown = sorted(set(data) - {"shots", "_comment"})
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; only `shots`.")
        raw = data["shots"]
        if not 1 <= len(raw) <= MAX_SHOTS:
            raise UsageError(f"{where} must list 1 to {MAX_SHOTS} shots, but lists {len(raw)}.")
        presets = load_presets()
        entries: list[ShotListEntry] = []
        for number, item in enumerate(raw, start=1):
            entries.append(_entry(item, f"{where}, shot {number}", presets, number))
        names = [entry.name for entry in entries]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise UsageError(f"{where}: two shots are named {', '.join(twice)}; name each once.")
        return cls(tuple(entries))


def _entry(item: Any, where: str, presets: dict[str, Any], number: int) -> ShotListEntry:
    if not isinstance(item, dict):
        raise UsageError(f"{where} must be a mapping such as {{slot: main, preset: studio}}.")
    unknown = sorted(set(item) - set(ENTRY_FIELDS))
    if unknown:
        raise UsageError(
            f"{where}: unknown field(s) {', '.join(unknown)}; a shot has {', '.join(ENTRY_FIELDS)}."
        )
    slot = item.get("slot")
    if slot not in SLOTS:
        raise UsageError(f"{where}: `slot` must be one of {', '.join(SLOTS)}, but is {slot!r}.")
    description = item.get("description")
    if description is not None:
        if not isinstance(description, str) or not " ".join(description.split()):
            raise UsageError(f"{where}: `description` must be words, such as '{{product}} on oak'.")
        description = " ".join(description.split())
        if len(description) > MAX_DESCRIPTION:
            raise UsageError(f"{where}: `description` is over {MAX_DESCRIPTION} characters.")
    preset = item.get("preset")
    if preset is not None and preset not in presets:
        raise UsageError(
            f"{where}: unknown preset {preset!r}; choose one of {', '.join(presets)} "
            "(`packshot presets`)."
        )
    if description is None and preset is None:
        raise UsageError(f"{where}: give a `description`, a `preset`, or both.")
    aspect = item.get("aspect")
    if aspect is not None and aspect not in ASPECTS:
        raise UsageError(
            f"{where}: `aspect` must be one of {', '.join(ASPECTS)}, but is {aspect!r}."
        )
    count = item.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= JOB_MAX_COUNT:
        raise UsageError(f"{where}: `count` must be 1 to {JOB_MAX_COUNT}, but is {count!r}.")
    name = item.get("name") or f"{number:02d}-{slot}"
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", name):
        raise UsageError(
            f"{where}: `name` {name!r} must be 1-40 lower-case letters, digits and dashes "
            "(it names the shot's folder)."
        )
    return ShotListEntry(name, slot, description, preset, aspect, count)


def load_shot_list(path: Path | str) -> ShotList:
    """The shot list in a YAML (.yaml, .yml) or JSON (.json) file, checked."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"Shot list not found: {path}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Can't read the shot list {path} ({error}).") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise UsageError(f"A shot list is a .yaml, .yml or .json file, not {path.name}.")
    except (ValueError, yaml.YAMLError) as error:
        kind = "JSON" if suffix == ".json" else "YAML"
        raise UsageError(f"The shot list {path} is not valid {kind}: {error}".strip()) from None
    return ShotList.from_dict(data, where=f"The shot list {path.name}")
