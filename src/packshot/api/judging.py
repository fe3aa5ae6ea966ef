"""Intake's judging of uploads for the studio, run in a process of its own (see
`packshot.api.deps.run_intake`): this module imports no web framework, so that the process
starts quickly, and what goes in and out is plain data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from packshot.api.settings import ApiSettings
from packshot.jobs.models import new_id


def intake_config(settings: ApiSettings) -> Any:
    from packshot.intake import IntakeConfig

    return IntakeConfig(
        max_file_bytes=settings.max_file_bytes,
        max_pixels=int(settings.max_megapixels * 1_000_000),
    )


def judge_and_store(
    files: list[tuple[str, bytes]], folder: Path, settings: ApiSettings
) -> list[dict[str, Any]]:
    """Intake's verdict on each file; accepted ones re-encoded (PNG, no metadata) into `folder`."""
    from packshot.intake import check_files, load_photo

    config = intake_config(settings)
    report = check_files(files, config=config)
    accepted = {photo.file: photo for photo in report.accepted}
    rejected = {item.file: item for item in report.rejected}
    skipped = {item.file: item for item in report.skipped}
    folder.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for name, data in files:
        if name in accepted:
            photo_id = new_id("pho")
            normalised = load_photo(data, name, config)
            image = normalised.image
            if normalised.mask is not None:  # the product's alpha travels as the PNG's alpha
                image = image.copy()
                image.putalpha(normalised.mask)
            tmp = folder / f"{photo_id}.tmp"
            image.save(tmp, format="PNG")
            tmp.replace(folder / f"{photo_id}.png")
            info = accepted[name]
            results.append(
                {
                    "file_name": name,
                    "status": "accepted",
                    "id": photo_id,
                    "width": info.width,
                    "height": info.height,
                    "warnings": list(info.warnings),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        elif name in rejected:
            item = rejected[name]
            results.append(
                {
                    "file_name": name,
                    "status": "rejected",
                    "reason": item.reason,
                    "message": item.message,
                }
            )
        else:
            item = skipped.get(name)
            reason = item.reason if item else "skipped"
            results.append(
                {
                    "file_name": name,
                    "status": "skipped",
                    "reason": reason,
                    "message": f"{name} is not a photo intake looks at ({reason} file).",
                }
            )
    return results


def report(photos: list[tuple[str, str]], folder: Path, settings: ApiSettings) -> dict[str, Any]:
    """The photo-set report of stored photos: `(photo id, file name)` pairs."""
    from packshot.intake import check_files

    items = [(name, (folder / f"{photo_id}.png").read_bytes()) for photo_id, name in photos]
    return check_files(items, config=intake_config(settings)).to_dict()


def warm() -> None:
    """Import intake (numpy, Pillow, OpenCV) ahead of the first upload."""
    import packshot.intake  # noqa: F401
