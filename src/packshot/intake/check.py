"""Check a folder (or a list of uploads) of product photos and judge the set: `check_photos`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from packshot.errors import PhotoError, PhotoSetError
from packshot.intake.config import IntakeConfig
from packshot.intake.decode import decode_photo, read_file
from packshot.intake.quality import is_plain, measure
from packshot.intake.report import (
    AcceptedPhoto,
    PhotoScores,
    PhotoSetReport,
    RejectedFile,
    SkippedFile,
)
from packshot.intake.setcheck import Measured, SetFindings, colour_name, judge_set
from packshot.progress import ProgressCallback, ProgressEvent, no_progress

# Files operating systems leave in photo folders; never photos.
SYSTEM_FILES = {"thumbs.db", "desktop.ini", "icon\r", "ehthumbs.db"}
_MAX_NAMES = 6  # file names listed in one advice sentence before "and N more"

Source = tuple[str, Callable[[], bytes]]  # a file name and how to get its bytes


def folder_entries(folder: Path, what: str) -> list[Path]:
    """Everything in `folder`, sorted by name; PhotoSetError when it's missing or unreadable.

    `what` names the folder's contents for the messages ("product photos", "shots").
    """
    if not folder.exists():
        raise PhotoSetError(f"The {what} folder {folder} does not exist: check the path.")
    if not folder.is_dir():
        raise PhotoSetError(f"{folder} is a file, not a folder: pass the folder of {what}.")
    try:
        return sorted(folder.iterdir(), key=lambda p: (p.name.casefold(), p.name))
    except OSError as exc:
        raise PhotoSetError(
            f"The {what} folder {folder} can't be read ({exc.strerror or exc}): check its "
            "permissions."
        ) from None


def check_photos(
    directory: str | os.PathLike[str],
    config: IntakeConfig | None = None,
    progress: ProgressCallback = no_progress,
) -> PhotoSetReport:
    """Check every photo in `directory` (not its sub-folders) and judge the set.

    Each file is decoded and judged on its own; a bad one is rejected with its reason and
    never stops the rest. Hidden and system files and sub-folders are skipped. Nothing in the
    folder is written to. Raises PhotoSetError only when the folder doesn't exist, isn't a
    folder or holds no files; a folder of unusable files gives the verdict "not enough".
    """
    config = config or IntakeConfig()
    folder = Path(directory)
    # 1. The folder itself.
    entries = folder_entries(folder, "product photos")

    # 2. Skip what is not a candidate photo.
    sources: list[Source] = []
    skipped: list[SkippedFile] = []
    for entry in entries:
        reason = skip_reason(entry.name, entry.is_dir())
        if reason:
            skipped.append(SkippedFile(entry.name, reason))
        else:
            sources.append((entry.name, _reader(entry, entry.name, config)))
    if not sources:
        found = f" (only {', '.join(s.file for s in skipped)})" if skipped else ""
        raise PhotoSetError(
            f"The folder {folder} has no photos{found}: add 5–40 photos of the product."
        )
    return _check(sources, skipped, str(folder.resolve()), config, progress)


def check_files(
    items: Sequence[Path | tuple[str, bytes]],
    config: IntakeConfig | None = None,
    progress: ProgressCallback = no_progress,
) -> PhotoSetReport:
    """Check a list of files or uploads (`(file name, bytes)`) and judge them as one set.

    The same checks as `check_photos`. Names that repeat (every iPhone upload is
    "image.jpg") get " (2)", " (3)"… so each result can be told apart. The report's
    `directory` is the files' common folder when they are all paths in one folder, else None.
    """
    config = config or IntakeConfig()
    sources: list[Source] = []
    skipped: list[SkippedFile] = []
    seen: set[str] = set()
    folders: set[Path | None] = set()  # None for uploads
    for item in items:
        if isinstance(item, tuple):
            raw_name, data = item
            name = _unique(Path(str(raw_name)).name or "upload", seen)
            reason = skip_reason(name, False)
            if not reason:
                sources.append((name, _bytes_reader(data)))
            folders.add(None)
        else:
            path = Path(item)
            name = _unique(path.name, seen)
            reason = skip_reason(name, path.is_dir())
            if not reason:
                sources.append((name, _reader(path, name, config)))
            folders.add(path.parent.resolve())
        if reason:
            skipped.append(SkippedFile(name, reason))
    if not sources:
        raise PhotoSetError("No photos to check: add 5–40 photos of the product.")
    folder = folders.pop() if len(folders) == 1 else None
    return _check(sources, skipped, None if folder is None else str(folder), config, progress)


def skip_reason(name: str, is_dir: bool) -> str | None:
    """Why intake never looks at `name` ("folder", "hidden", "system"); None if it does."""
    if is_dir:
        return "folder"
    if name.startswith("."):  # .DS_Store, ._photo.jpg (macOS resource forks), .hidden
        return "hidden"
    if name.casefold() in SYSTEM_FILES:
        return "system"
    return None


def _check(
    sources: list[Source],
    skipped: list[SkippedFile],
    directory: str | None,
    config: IntakeConfig,
    progress: ProgressCallback,
) -> PhotoSetReport:
    # 1. One file at a time: decode, normalise, measure; keep the measurements only.
    measured: list[Measured] = []
    accepted: list[AcceptedPhoto] = []
    rejected: list[RejectedFile] = []
    for done, (name, read) in enumerate(sources, start=1):
        try:
            photo = decode_photo(read(), name, config)
        except PhotoError as exc:
            rejected.append(RejectedFile(name, exc.reason, str(exc)))
            status = {"file": name, "status": "rejected", "reason": exc.reason}
        else:
            features = measure(photo)
            measured.append(Measured(name, photo.sha256, features))
            background = features.background
            texture = ""
            if background is not None:
                plain = is_plain(background, config)
                texture = f"{'plain' if plain else 'textured'} {colour_name(*background.lab)}"
            accepted.append(
                AcceptedPhoto(
                    file=name,
                    width=photo.width,
                    height=photo.height,
                    format=photo.format,
                    sha256=photo.sha256,
                    phash=f"{features.phash:016x}",
                    has_mask=photo.mask is not None,
                    scores=PhotoScores(
                        sharpness=round(features.sharpness, 1),
                        blurry=False,
                        brightness=round(features.brightness, 3),
                        highlights_clipped=round(features.highlights_clipped, 3),
                        shadows_clipped=round(features.shadows_clipped, 3),
                        exposure="ok",
                    ),
                    background=texture or None,
                    warnings=[_capitalise(note) + "." for note in photo.notes],
                    conversions=photo.conversions,
                )
            )
            status = {"file": name, "status": "accepted"}
            del photo  # the pixels: a 50 MP photo is 150 MB
        progress(ProgressEvent("intake", done, len(sources), f"{status['status']} {name}", status))

    # 2. The set as a whole.
    findings = judge_set(measured, config)
    _add_photo_warnings(accepted, measured, findings, config)
    distinct = len(findings.distinct)
    problems = bool(findings.blurry or findings.dark or findings.bright or findings.shared)
    if distinct < config.min_photos:
        verdict = "not enough"
    elif distinct >= config.good_photos and not problems:
        verdict = "ready"
    else:
        verdict = "usable"
    advice = _advice(accepted, rejected, findings, verdict, config)
    return PhotoSetReport(
        directory=directory,
        verdict=verdict,
        advice=advice,
        accepted=accepted,
        rejected=rejected,
        skipped=skipped,
        duplicates=findings.duplicates,
        shared=findings.shared,
        config=config.to_dict(),
    )


def _add_photo_warnings(
    accepted: list[AcceptedPhoto],
    measured: list[Measured],
    findings: SetFindings,
    config: IntakeConfig,
) -> None:
    for photo, m in zip(accepted, measured, strict=True):
        warnings: list[str] = []
        if photo.file in findings.copy_of:
            kind, first = findings.copy_of[photo.file]
            if kind == "exact":
                warnings.append(f"An exact copy of {first}: it is used once.")
            else:
                warnings.append(
                    f"Nearly the same photo as {first}: they count as one; replace it with a "
                    "photo from another angle or setting."
                )
        if photo.file in findings.blurry:
            photo.scores.blurry = True
            warnings.append(
                f"Looks blurry (sharpness {m.features.sharpness:.0f}, needs "
                f"{findings.blur_threshold:.0f}): retake it with the product in focus, or "
                "leave it out."
            )
        if photo.file in findings.dark:
            photo.scores.exposure = "dark"
            warnings.append(
                "Too dark: even its brightest parts are dark grey; retake it with more light."
            )
        if photo.file in findings.bright:
            photo.scores.exposure = "bright"
            warnings.append(
                f"Over-exposed: {m.features.highlights_clipped:.0%} of the product is blown out "
                "to white; retake it with less light."
            )
        photo.warnings[:0] = warnings


def _advice(
    accepted: list[AcceptedPhoto],
    rejected: list[RejectedFile],
    findings: SetFindings,
    verdict: str,
    config: IntakeConfig,
) -> list[str]:
    """Concrete sentences for the merchant, most important first."""
    advice: list[str] = []
    n = len(findings.distinct)
    better = f"{config.better_photos}–{config.max_useful_photos} give better results"

    # 1. How many photos.
    if not accepted:
        total = len(rejected)
        advice.append(
            f"None of the {total} file{_s(total)} could be used: add photos of the product as "
            "JPEG, PNG, WebP or HEIC (the reasons are listed with each file)."
        )
    elif n < config.min_photos:
        advice.append(
            f"Only {n} distinct photo{_s(n)}: at least {config.min_photos} are needed, "
            f"{config.good_photos} or more already work and {better}; add "
            f"{config.min_photos - n} or more photos from other angles and settings."
        )
    elif n < config.good_photos:
        advice.append(
            f"Only {n} photos: {config.good_photos} or more already work, {better}; add photos "
            "from other angles and settings."
        )
    elif n < config.better_photos:
        advice.append(f"{n} photos: enough to train; {better}.")
    elif n > config.max_useful_photos:
        advice.append(
            f"{n} photos: more than {config.max_useful_photos} rarely helps and makes training "
            f"slower; keep the {config.max_useful_photos} most varied."
        )

    # 2. Files that were rejected.
    if rejected and accepted:
        names = _names([r.file for r in rejected])
        whose = "its" if len(rejected) == 1 else "each one's"
        advice.append(
            f"{len(rejected)} file{_s(len(rejected))} could not be used ({names}): {whose} "
            "reason says what to do."
        )

    # 3. Duplicates.
    for group in findings.duplicates:
        first, copies = group.files[0], group.files[1:]
        if group.kind == "exact":
            verb = "is an exact copy" if len(copies) == 1 else "are exact copies"
            advice.append(f"{_names(copies)} {verb} of {first}: each photo is used once.")
        else:
            advice.append(
                f"{_names(group.files)} are nearly the same photo: they count as one; replace "
                "the extras with photos from other angles or settings."
            )

    # 4. Photo quality.
    if findings.blurry:
        k = len(findings.blurry)
        it = "it" if k == 1 else "them"
        advice.append(
            f"{k} photo{_s(k)} look{'s' if k == 1 else ''} blurry ({_names(findings.blurry)}): "
            f"retake {it} with the product in focus, or leave {it} out."
        )
    if findings.dark:
        k = len(findings.dark)
        advice.append(
            f"{_names(findings.dark)} {'is' if k == 1 else 'are'} too dark: retake "
            f"{'it' if k == 1 else 'them'} with more light."
        )
    if findings.bright:
        k = len(findings.bright)
        advice.append(
            f"{_names(findings.bright)} {'is' if k == 1 else 'are'} over-exposed (the product is "
            f"blown out to white): retake {'it' if k == 1 else 'them'} with less light."
        )

    # 5. Features shared by most photos, which would leak into every shot.
    for shared in findings.shared:
        k = len(shared.files)
        if shared.kind == "background":
            colour = shared.description.split(" ", 1)[-1]
            advice.append(
                f"{k} of {n} photos share a {shared.description} background: the model will put "
                f"a {colour} background in every shot; add photos on other backgrounds or use "
                "masks (transparent PNGs)."
            )
        else:
            advice.append(
                f"{k} of {n} photos show the product from the same angle: the model will only "
                "learn that view; add photos from the sides, the back and above, and close-ups."
            )

    if verdict == "ready":
        advice.append(f"Ready to train: {n} distinct photos and no problems found.")
    return advice


def _reader(path: Path, name: str, config: IntakeConfig) -> Callable[[], bytes]:
    return lambda: read_file(path, name, config)


def _bytes_reader(data: bytes) -> Callable[[], bytes]:
    return lambda: bytes(data)


def _unique(name: str, seen: set[str]) -> str:
    """`name`, or "stem (2).ext", "stem (3).ext"… when it was seen before."""
    candidate, n = name, 1
    stem, suffix = os.path.splitext(name)
    while candidate in seen:
        n += 1
        candidate = f"{stem} ({n}){suffix}"
    seen.add(candidate)
    return candidate


def _names(files: list[str]) -> str:
    """A list of names for a sentence: "a.jpg, b.jpg and c.jpg", or the first few and "N more"."""
    if len(files) > _MAX_NAMES:
        shown = files[: _MAX_NAMES - 1]
        return f"{', '.join(shown)} and {len(files) - len(shown)} more"
    if len(files) == 1:
        return files[0]
    return f"{', '.join(files[:-1])} and {files[-1]}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]
