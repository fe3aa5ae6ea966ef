"""Photo intake, the set as a whole: folders, duplicates, shared features, verdicts, reports."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

import photo_corpus as photos
from packshot.errors import PhotoSetError
from packshot.intake import (
    IntakeConfig,
    PhotoSetReport,
    check_files,
    check_photos,
)
from packshot.progress import ProgressEvent

SUBJECTS = ["backpack"]  # DreamBench's subjects in the repo (examples/)


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: its sha256 and mtime."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dreambench_reports(dreambench: Path) -> dict[str, PhotoSetReport]:
    return {subject: check_photos(dreambench / subject) for subject in SUBJECTS}


@pytest.mark.parametrize("subject", SUBJECTS)
def test_dreambench_sets_are_usable_and_not_flagged(
    subject: str, dreambench_reports: dict[str, PhotoSetReport], dreambench: Path
) -> None:
    report = dreambench_reports[subject]
    files = sorted(p.name for p in (dreambench / subject).glob("*.jpg"))
    assert [p.file for p in report.accepted] == files
    assert report.rejected == [] and report.duplicates == []
    # 5–6 photos: usable, with the count advice first.
    assert report.verdict == "usable"
    assert report.advice[0].startswith(f"Only {len(files)} photos: 13 or more already work")
    # Real, varied photos: no false "same angle" (nor blur or exposure) warnings.
    assert [s.kind for s in report.shared if s.kind == "angle"] == []
    assert all(not p.scores.blurry and p.scores.exposure == "ok" for p in report.accepted)


def test_eight_copies_of_one_photo_are_not_enough(tmp_path: Path, dreambench: Path) -> None:
    folder = tmp_path / "copies"
    folder.mkdir()
    for i in range(8):
        shutil.copy(dreambench / "backpack" / "00.jpg", folder / f"bag-{i}.jpg")
    report = check_photos(folder)
    assert report.verdict == "not enough"
    assert report.counts["distinct"] == 1
    names = [f"bag-{i}.jpg" for i in range(8)]
    assert [(g.kind, g.files) for g in report.duplicates] == [("exact", names)]
    assert any("bag-1.jpg" in a and "exact copies of bag-0.jpg" in a for a in report.advice)
    assert report.training_files() == ["bag-0.jpg"]
    assert report.photo("bag-3.jpg").warnings[0] == "An exact copy of bag-0.jpg: it is used once."


def test_near_duplicates_count_once(tmp_path: Path, dreambench: Path) -> None:
    folder = tmp_path / "near"
    shutil.copytree(dreambench / "backpack", folder)
    with Image.open(folder / "03.jpg") as original:
        smaller = original.resize((640, 640))
    smaller.save(folder / "03-small.jpg", quality=60)  # a re-saved, resized copy
    report = check_photos(folder)
    assert [(g.kind, g.files) for g in report.duplicates] == [("near", ["03-small.jpg", "03.jpg"])]
    assert report.counts["distinct"] == 6
    assert report.training_files() == sorted(p.name for p in folder.iterdir())
    assert any("nearly the same photo" in a for a in report.advice)


def test_shared_background_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "white"
    others = [
        photos.render_product((640, 640), yaw=200, pitch=30, background="green", seed=91),
        photos.render_product((640, 640), yaw=300, pitch=15, background="wood", seed=92),
    ]
    images = photos.same_background_set(7, "white") + others
    photos.write_photos(folder, images)
    report = check_photos(folder)
    backgrounds = [s for s in report.shared if s.kind == "background"]
    assert len(backgrounds) == 1 and len(backgrounds[0].files) == 7
    assert backgrounds[0].description == "plain white"
    assert (
        "7 of 9 photos share a plain white background: the model will put a white background "
        "in every shot; add photos on other backgrounds or use masks (transparent PNGs)."
    ) in report.advice
    assert report.verdict == "usable"


@pytest.mark.parametrize(
    ("background", "name"), [("wood", "textured brown"), ("green", "plain green")]
)
def test_other_shared_backgrounds_are_named(tmp_path: Path, background: str, name: str) -> None:
    photos.write_photos(tmp_path, photos.same_background_set(6, background))
    report = check_photos(tmp_path)
    assert f"6 of 6 photos share a {name} background" in " ".join(report.advice)


def test_varied_set_has_no_shared_features_and_is_ready(tmp_path: Path) -> None:
    photos.write_photos(tmp_path, photos.varied_set(14))
    report = check_photos(tmp_path)
    assert report.shared == []
    assert report.verdict == "ready", report.advice
    assert report.advice[-1] == "Ready to train: 14 distinct photos and no problems found."


def test_same_angle_is_flagged(tmp_path: Path) -> None:
    photos.write_photos(tmp_path, photos.same_angle_set(8))
    report = check_photos(tmp_path)
    angles = [s for s in report.shared if s.kind == "angle"]
    assert angles and len(angles[0].files) >= 6
    assert [s.kind for s in report.shared] == ["angle"], "backdrops differ"
    assert any(
        "from the same angle: the model will only learn that view" in a for a in report.advice
    )


def test_blurry_and_dark_photos_are_flagged(tmp_path: Path, dreambench: Path) -> None:
    folder = tmp_path / "backpack"
    shutil.copytree(dreambench / "backpack", folder)
    with Image.open(folder / "01.jpg") as image:  # replaced by a blurred copy
        image.filter(ImageFilter.GaussianBlur(image.width / 512 * 2)).save(folder / "01.jpg")
    with Image.open(folder / "02.jpg") as image:  # replaced by a copy 2.6 stops darker
        image.point(lambda v: v // 6).save(folder / "02.jpg", quality=95)
    report = check_photos(folder)
    flagged = [(p.file, p.scores.blurry, p.scores.exposure) for p in report.accepted]
    assert [f for f in flagged if f[1] or f[2] != "ok"] == [
        ("01.jpg", True, "ok"),
        ("02.jpg", False, "dark"),
    ], "dark is not blurry, blurry is not dark"
    assert report.advice[1].startswith("1 photo looks blurry (01.jpg): retake it")
    assert report.advice[2] == "02.jpg is too dark: retake it with more light."
    assert report.photo("01.jpg").warnings[0].startswith("Looks blurry (sharpness")
    assert report.verdict == "usable"


def test_over_exposed_photo_is_flagged(tmp_path: Path) -> None:
    # A light product: the sample backpack's deep red never clips to white, even 3× brighter
    # (see IntakeConfig.bright_clipped_share).
    beige = (220, 200, 160)
    backgrounds = [*photos.BACKGROUNDS, "wood"]
    light = [
        photos.render_product(
            (640, 640), yaw=yaw, pitch=pitch, background=backgrounds[i], colour=beige, seed=i
        )
        for i, (yaw, pitch) in enumerate(photos.VIEWS[:6])
    ]
    photos.write_photos(tmp_path, light)
    with Image.open(tmp_path / "photo-02.jpg") as image:  # replaced by a copy 3× brighter
        image.point(lambda v: min(255, 3 * v)).save(tmp_path / "photo-02.jpg", quality=95)
    report = check_photos(tmp_path)
    assert [p.file for p in report.accepted if p.scores.exposure != "ok"] == ["photo-02.jpg"]
    assert report.photo("photo-02.jpg").scores.exposure == "bright"
    assert report.photo("photo-02.jpg").scores.highlights_clipped > 0.5
    assert "photo-02.jpg is over-exposed" in " ".join(report.advice)


def test_featureless_photos_do_not_break_the_checks() -> None:
    blank = photos.encode(Image.new("RGB", (300, 300), (255, 255, 255)), "PNG")
    strip = photos.encode(Image.new("RGB", (1024, 256), (10, 10, 10)), "PNG")
    report = check_files([("blank.png", blank), ("strip.png", strip), ("copy.png", blank)])
    assert [p.file for p in report.accepted] == ["blank.png", "strip.png", "copy.png"]
    assert report.photo("strip.png").scores.exposure == "dark"
    assert report.photo("blank.png").scores.blurry
    assert report.verdict == "not enough"


def test_mixed_folder_skips_rejects_and_never_writes(tmp_path: Path, dreambench: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(dreambench / "backpack", folder)
    photos.write_files(folder, photos.bad_files())
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "._00.jpg").write_bytes(b"\0\5\26\7")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "more").mkdir()
    (folder / "more" / "x.jpg").write_bytes((dreambench / "backpack" / "00.jpg").read_bytes())
    (folder / "broken-link.jpg").symlink_to(tmp_path / "nowhere.jpg")
    before = _snapshot(folder)

    events: list[ProgressEvent] = []
    report = check_photos(folder, progress=events.append)

    assert _snapshot(folder) == before, "nothing in the folder changed or appeared"
    assert [p.file for p in report.accepted] == [f"0{i}.jpg" for i in range(6)]
    rejected = {r.file: r.reason for r in report.rejected}
    assert rejected == {f.name: f.reason for f in photos.bad_files()} | {
        "broken-link.jpg": "unreadable"
    }
    skipped = {s.file: s.reason for s in report.skipped}
    assert skipped == {
        ".DS_Store": "hidden",
        "._00.jpg": "hidden",
        "Thumbs.db": "system",
        "more": "folder",
    }
    assert report.verdict == "usable"
    assert any(a.startswith(f"{len(rejected)} files could not be used") for a in report.advice)
    # One "intake" event per file, in order.
    assert [e.stage for e in events] == ["intake"] * report.counts["files"]
    assert [e.done for e in events] == list(range(1, report.counts["files"] + 1))
    assert {e.total for e in events} == {report.counts["files"]}
    assert events[0].data["file"] == "00.jpg" and events[0].data["status"] == "accepted"


def test_folder_of_rejects_is_not_enough(tmp_path: Path) -> None:
    photos.write_files(tmp_path, photos.bad_files()[:4])
    report = check_photos(tmp_path)
    assert report.verdict == "not enough" and report.accepted == []
    assert report.advice[0].startswith("None of the 4 files could be used")


def test_folder_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(PhotoSetError, match="nowhere.*does not exist"):
        check_photos(tmp_path / "nowhere")
    file = tmp_path / "a.jpg"
    file.write_bytes(b"x")
    with pytest.raises(PhotoSetError, match="a.jpg is a file, not a folder"):
        check_photos(file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PhotoSetError, match="empty has no photos"):
        check_photos(empty)
    (empty / ".DS_Store").write_bytes(b"x")
    with pytest.raises(PhotoSetError, match=r"only \.DS_Store"):
        check_photos(empty)


def test_check_files_takes_uploads_with_repeated_names(dreambench: Path) -> None:
    uploads = [
        ("image.jpg", p.read_bytes()) for p in sorted((dreambench / "backpack").glob("*.jpg"))
    ]
    uploads.append(("notes.jpg", b"<html><body>hi</body></html>"))
    report = check_files(uploads, config=IntakeConfig())
    assert [p.file for p in report.accepted] == ["image.jpg"] + [
        f"image ({i}).jpg" for i in range(2, 7)
    ]
    assert [(r.file, r.reason) for r in report.rejected] == [("notes.jpg", "not_an_image")]
    assert report.directory is None
    assert report.verdict == "usable"


def test_check_files_takes_paths(dreambench: Path) -> None:
    paths = sorted((dreambench / "backpack").glob("*.jpg"))
    report = check_files(paths)
    assert report.directory == str((dreambench / "backpack").resolve())
    assert len(report.accepted) == len(paths)


def test_report_json_round_trip_with_non_ascii_names(tmp_path: Path) -> None:
    folder = tmp_path / "fotos"
    paths = photos.write_photos(folder, photos.varied_set(6))
    paths[0].rename(folder / "café_ñ_日本.jpg")
    (folder / "leer.jpg").write_bytes(b"")
    report = check_photos(folder)
    saved = report.save(tmp_path / "report.json")
    text = saved.read_text("utf-8")
    assert "café_ñ_日本.jpg" in text, "names stay readable in the JSON"
    data = json.loads(text)
    assert {"accepted", "rejected", "duplicates", "verdict", "advice", "counts"} <= data.keys()
    first = data["accepted"][0]
    assert first["file"] == "café_ñ_日本.jpg"
    assert {"file", "width", "height", "warnings", "scores"} <= first.keys()
    assert {"sharpness", "blurry", "brightness", "exposure"} <= first["scores"].keys()
    assert data["rejected"] == [
        {"file": "leer.jpg", "reason": "empty", "message": report.rejected[0].message}
    ]
    assert data["counts"] == {
        "files": 7,
        "accepted": 6,
        "rejected": 1,
        "skipped": 0,
        "distinct": 6,
        "exact_duplicates": 0,
        "near_duplicates": 0,
    }
    loaded = PhotoSetReport.load(saved)
    assert loaded == report
    assert loaded.to_dict() == report.to_dict()
    assert IntakeConfig.from_dict(loaded.config) == IntakeConfig()
