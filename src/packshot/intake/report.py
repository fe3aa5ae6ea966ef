"""The photo-set report: what intake accepted, rejected and skipped, and its verdict on the set."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packshot.errors import PackshotError

REPORT_VERSION = 1
VERDICTS = ("ready", "usable", "not enough")


@dataclass
class PhotoScores:
    """The measurements behind a photo's warnings (see IntakeConfig for the thresholds)."""

    sharpness: float  # variance of the Laplacian, 97th percentile of tiles, at 512 px
    blurry: bool
    brightness: float  # mean luminance, 0–1
    highlights_clipped: float  # share of the product clipped to white
    shadows_clipped: float  # share of the photo crushed to black
    exposure: str  # "ok", "dark" or "bright"


@dataclass
class AcceptedPhoto:
    """A photo that can be trained on, with its scores and warnings."""

    file: str  # relative to the folder (or the upload's name)
    width: int  # after EXIF orientation
    height: int
    format: str
    sha256: str
    phash: str  # 16 hex digits
    has_mask: bool  # an alpha channel that is used as the product mask
    scores: PhotoScores
    background: str | None  # e.g. "plain white"; None for photos with a mask
    warnings: list[str] = field(default_factory=list)  # sentences for the merchant
    conversions: list[str] = field(default_factory=list)  # what normalisation did


@dataclass
class RejectedFile:
    """A file that can't be used: `reason` is a PhotoError reason code, `message` a sentence."""

    file: str
    reason: str
    message: str


@dataclass
class SkippedFile:
    """A file or folder intake didn't look at: hidden and system files, sub-folders."""

    file: str
    reason: str  # "hidden", "system" or "folder"


@dataclass
class DuplicateGroup:
    """Files that are the same photo: "exact" (same bytes) or "near" (looks the same)."""

    kind: str
    files: list[str]


@dataclass
class SharedFeature:
    """A feature most photos share and that would leak into every shot."""

    kind: str  # "background" or "angle"
    files: list[str]
    description: str = ""  # e.g. "plain white" for a background


@dataclass
class PhotoSetReport:
    """The result of `check_photos` / `check_files`: per-file results and a verdict on the set.

    `verdict` is "ready" (enough distinct photos, no warnings), "usable" (can be trained on;
    read the advice) or "not enough". `advice` holds concrete sentences for the merchant.
    """

    directory: str | None  # the checked folder; None for uploads
    verdict: str
    advice: list[str]
    accepted: list[AcceptedPhoto]
    rejected: list[RejectedFile]
    skipped: list[SkippedFile]
    duplicates: list[DuplicateGroup]
    shared: list[SharedFeature]
    config: dict[str, Any]
    version: int = REPORT_VERSION

    @property
    def counts(self) -> dict[str, int]:
        """How many files were seen, accepted, rejected, skipped, and distinct photos."""
        return {
            "files": len(self.accepted) + len(self.rejected),
            "accepted": len(self.accepted),
            "rejected": len(self.rejected),
            "skipped": len(self.skipped),
            "distinct": self.distinct_count,
            "exact_duplicates": sum(len(g.files) - 1 for g in self.duplicates if g.kind == "exact"),
            "near_duplicates": sum(len(g.files) - 1 for g in self.duplicates if g.kind == "near"),
        }

    @property
    def distinct_count(self) -> int:
        """Accepted photos, counting every group of duplicates once."""
        return len(self.accepted) - sum(len(g.files) - 1 for g in self.duplicates)

    def training_files(self) -> list[str]:
        """Accepted files to train on: all but the extra copies of exact duplicates."""
        copies = {f for g in self.duplicates if g.kind == "exact" for f in g.files[1:]}
        return [p.file for p in self.accepted if p.file not in copies]

    def photo(self, file: str) -> AcceptedPhoto:
        """The accepted photo called `file`."""
        for photo in self.accepted:
            if photo.file == file:
                return photo
        raise KeyError(file)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (see the README for its shape)."""
        data = asdict(self)
        ordered = {
            "version": data.pop("version"),
            "directory": data.pop("directory"),
            "verdict": data.pop("verdict"),
            "advice": data.pop("advice"),
            "counts": self.counts,
        }
        ordered.update(data)
        return ordered

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text; file names stay readable (no \\u escapes)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as UTF-8 JSON to `path`; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # surrogateescape: a file name that isn't valid UTF-8 on disk round-trips as it was.
        path.write_text(self.to_json() + "\n", encoding="utf-8", errors="surrogateescape")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhotoSetReport:
        """The inverse of `to_dict`."""
        try:
            return cls(
                directory=data["directory"],
                verdict=data["verdict"],
                advice=list(data["advice"]),
                accepted=[
                    AcceptedPhoto(**{**p, "scores": PhotoScores(**p["scores"])})
                    for p in data["accepted"]
                ],
                rejected=[RejectedFile(**r) for r in data["rejected"]],
                skipped=[SkippedFile(**s) for s in data["skipped"]],
                duplicates=[DuplicateGroup(**g) for g in data["duplicates"]],
                shared=[SharedFeature(**s) for s in data["shared"]],
                config=dict(data["config"]),
                version=int(data.get("version", REPORT_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PackshotError(
                f"This is not a packshot photo-set report ({type(exc).__name__}: {exc}): "
                "run `packshot photos check` again to make a new one."
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PhotoSetReport:
        """Read a report written by `save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
        except OSError as exc:
            raise PackshotError(f"Can't read the report {path}: {exc.strerror or exc}.") from None
        except json.JSONDecodeError as exc:
            raise PackshotError(f"{path} is not valid JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise PackshotError(f"{path} is not a packshot photo-set report.")
        return cls.from_dict(data)
