"""What a resolved model is, as a typed record: `describe_model` → `ModelDescription`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from packshot.models.load import ModelSource, ResolvedModel
from packshot.models.standins import read_stand_in_note


@dataclass(frozen=True)
class ModelDescription:
    """What a resolved model is, for people (`packshot models info`) and run metadata."""

    ref: str
    family: str  # the family's name, "sd15"
    family_label: str  # "Stable Diffusion 1.5"
    source: ModelSource
    path: str
    resolution: int  # the side length it makes by default (64 for the tiny stand-ins)
    tiny_stand_in: bool
    note: str | None  # for people reading a report: the stand-ins' images are noise by design

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the keys `describe_model` has always written."""
        return asdict(self)


def describe_model(resolved: ResolvedModel) -> ModelDescription:
    """A summary of a resolved model, for reports and run metadata."""
    note = read_stand_in_note(resolved.path) if resolved.stand_in else None
    return ModelDescription(
        ref=resolved.ref,
        family=resolved.family.name,
        family_label=resolved.family.label,
        source=resolved.source,
        path=str(resolved.path),
        resolution=resolved.family.native_resolution(resolved.path),
        tiny_stand_in=resolved.stand_in,
        note=str(note["note"]) if note else None,
    )
