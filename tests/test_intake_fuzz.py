"""Property tests: whatever bytes arrive, intake answers with a photo or a PhotoError."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import photo_corpus as photos
from packshot.errors import PhotoError
from packshot.intake import check_files, load_photo
from packshot.intake.quality import measure

_PHOTO = photos.sample_photo((320, 256))
VALID = {
    "jpeg": photos.encode(_PHOTO, "JPEG", quality=80),
    "progressive": photos.encode(_PHOTO, "JPEG", quality=80, progressive=True),
    "png": photos.encode(_PHOTO, "PNG"),
    "palette": photos.encode(_PHOTO.convert("P"), "PNG"),
    "webp": photos.encode(_PHOTO, "WEBP", quality=80),
    "gif": photos.animated_gif((320, 256)),
}
MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b""]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _intake(data: bytes, name: str) -> None:
    """Load (and when accepted, measure) one file; only PhotoError may come out."""
    try:
        photo = load_photo(data, name)
    except PhotoError as exc:
        assert exc.reason and str(exc).startswith(name)
        return
    measure(photo)


@FUZZ
@given(st.sampled_from(MAGIC), st.binary(max_size=4096))
def test_arbitrary_bytes(magic: bytes, data: bytes) -> None:
    _intake(magic + data, "fuzz.jpg")


@FUZZ
@given(
    st.sampled_from(sorted(VALID)),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=24),
    st.floats(0.02, 1.0),
)
def test_mutated_valid_files(kind: str, mutations: list[tuple[float, int]], keep: float) -> None:
    data = bytearray(VALID[kind])
    for where, value in mutations:
        data[int(where * len(data))] = value
    _intake(bytes(data[: max(1, int(len(data) * keep))]), f"mutated.{kind}")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=512), min_size=1, max_size=6))
def test_a_set_of_garbage_is_judged_not_enough(blobs: list[bytes]) -> None:
    items: list = [(f"file-{i}.jpg", b) for i, b in enumerate(blobs)]
    items.append(("good.jpg", VALID["jpeg"]))
    report = check_files(items)
    assert report.verdict == "not enough"
    assert "good.jpg" in [p.file for p in report.accepted]
    report.to_json()
    assert io.StringIO(report.to_json()).read().startswith("{")
