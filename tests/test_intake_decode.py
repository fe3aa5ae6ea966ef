"""Photo intake, one file at a time: a corpus of bad and odd files, and safe decoding."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import photo_corpus as photos
from packshot.errors import PhotoError, UsageError
from packshot.intake import REASONS, IntakeConfig, load_photo
from packshot.intake.decode import HEIF_INSTALL

BAD = photos.bad_files()
ODD = photos.odd_files()


@pytest.mark.parametrize("case", BAD, ids=[f.name for f in BAD])
def test_bad_file_is_rejected_with_its_reason(case: photos.CorpusFile) -> None:
    with pytest.raises(PhotoError) as info:
        load_photo(case.data, case.name)
    assert info.value.reason == case.reason
    assert info.value.reason in REASONS
    message = str(info.value)
    assert message.startswith(case.name), "the message names the file"
    assert ":" in message and len(message) < 400, "and says what to do, briefly"


@pytest.mark.parametrize("case", ODD, ids=[f.name for f in ODD])
def test_odd_but_valid_file_is_accepted_and_normalised(case: photos.CorpusFile) -> None:
    photo = load_photo(case.data, case.name)
    assert photo.name == case.name
    assert photo.image.mode == "RGB"
    assert photo.image.info == {}, "no metadata travels on"
    assert np.asarray(photo.image).dtype == np.uint8
    expect = case.expect
    if "size" in expect:
        assert photo.image.size == expect["size"]
    if "mask" in expect:
        assert (photo.mask is not None) == expect["mask"]
    if "conversion" in expect:
        assert any(c.startswith(expect["conversion"]) for c in photo.conversions), photo.conversions
    for key in ("pixel", "pixel2"):
        if key in expect:
            (x, y), colour = expect[key]
            got = photo.image.getpixel((x, y))
            assert np.abs(np.subtract(got, colour)).max() <= 24, (got, colour)


def test_corpus_covers_every_kind() -> None:
    reasons = {f.reason for f in BAD}
    assert reasons == set(REASONS) - {"heif_plugin_missing", "unreadable"}
    names = {f.name for f in ODD}
    assert {"cmyk-profile.jpg", "grey-16bit.png", "turned.jpg", "café_ñ_日本.jpg"} <= names


def test_exif_rotation_swaps_width_and_height() -> None:
    source = photos.sample_photo((400, 300))
    data = photos.jpeg_with_orientation(source, 6)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (300, 400), "stored turned"
    photo = load_photo(data, "turned.jpg")
    assert photo.stored_size == (300, 400)
    assert photo.image.size == (400, 300)
    difference = np.abs(np.asarray(photo.image, np.int16) - np.asarray(source, np.int16))
    assert difference.mean() < 4, "pixels the right way up, as photographed"


def test_cmyk_profile_is_applied_not_the_naive_formula() -> None:
    with_profile = load_photo(
        photos.encode(photos.cmyk_image(), "JPEG", icc_profile=photos.cmyk_icc_profile()), "a.jpg"
    )
    without = load_photo(photos.encode(photos.cmyk_image(), "JPEG"), "b.jpg")
    cyan_with = np.asarray(with_profile.image)[200, 100]
    cyan_without = np.asarray(without.image)[200, 100]
    assert np.abs(cyan_with - np.array(photos.INKS["cyan"])).max() <= 16
    assert np.abs(cyan_without.astype(int) - (0, 255, 255)).max() <= 8
    paper = np.asarray(with_profile.image)[200, 300]
    assert paper.min() >= 245, "bare paper stays white"


def test_alpha_becomes_the_mask_and_transparency_the_matte() -> None:
    image, mask = photos.product_with_mask()
    photo = load_photo(photos.rgba_png(image, mask), "cut-out.png")
    assert photo.mask is not None and photo.mask.mode == "L"
    assert np.array_equal(np.asarray(photo.mask), np.asarray(mask))
    pixels = np.asarray(photo.image)
    assert tuple(pixels[5, 5]) == (255, 255, 255), "transparent garbage becomes the white matte"
    assert tuple(pixels[200, 450]) == (20, 90, 200), "the product is untouched"
    grey = load_photo(photos.rgba_png(image, mask), "x.png", IntakeConfig(matte=(128, 128, 128)))
    assert tuple(np.asarray(grey.image)[5, 5]) == (128, 128, 128)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    photo = load_photo(photos.png_16bit_grey((400, 300)), "grey.png")
    row = np.asarray(photo.image)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[200] - 128) <= 2, "mid-grey stays mid-grey"


def test_animated_gif_keeps_the_first_frame() -> None:
    photo = load_photo(photos.animated_gif(), "a.gif")
    assert tuple(photo.image.getpixel((300, 200))) == (220, 20, 20)


def test_pixel_limit_is_per_call_and_checked_from_the_header() -> None:
    jpeg = photos.encode(photos.sample_photo((600, 400)), "JPEG")
    assert load_photo(jpeg, "ok.jpg").width == 600
    strict = IntakeConfig(max_pixels=200_000)
    with pytest.raises(PhotoError) as info:
        load_photo(jpeg, "big.jpg", strict)
    assert info.value.reason == "too_large"
    assert "0 megapixels" in str(info.value) and "600×400" in str(info.value)
    # Pillow itself refuses only above 179 MP; a 56 MP header is refused by intake's limit.
    with pytest.raises(PhotoError, match="56 megapixels"):
        load_photo(photos.jpeg_declaring(jpeg, 8000, 7000), "56mp.jpg")


def test_thresholds_for_small_and_strip_photos_are_configurable() -> None:
    small = photos.encode(photos.sample_photo((200, 150)), "JPEG")
    assert load_photo(small, "small.jpg", IntakeConfig(min_side=128)).width == 200
    strip = photos.encode(photos.sample_photo((1500, 300)), "JPEG")
    assert load_photo(strip, "strip.jpg", IntakeConfig(max_aspect=6)).height == 300


def test_byte_limit() -> None:
    jpeg = photos.encode(photos.sample_photo(), "JPEG")
    with pytest.raises(PhotoError) as info:
        load_photo(jpeg, "big.jpg", IntakeConfig(max_file_bytes=1000))
    assert info.value.reason == "too_large"


def test_heic_without_the_plugin_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = photos.heic(photos.sample_photo())
    if data is None:
        pytest.skip("pillow-heif can't encode HEIC here")
    assert load_photo(data, "iphone.heic").image.size == (400, 300)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if it were not installed
    with pytest.raises(PhotoError) as info:
        load_photo(data, "iphone.heic")
    assert info.value.reason == "heif_plugin_missing"
    assert HEIF_INSTALL in str(info.value) and "packshot[heif]" in str(info.value)


def test_load_from_a_path_reads_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "café_ñ_日本.jpg"
    path.write_bytes(photos.encode(photos.sample_photo(), "JPEG"))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    photo = load_photo(path)
    assert photo.name == "café_ñ_日本.jpg"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["café_ñ_日本.jpg"]


def test_missing_file_and_folder_are_unreadable(tmp_path: Path) -> None:
    with pytest.raises(PhotoError) as info:
        load_photo(tmp_path / "gone.jpg")
    assert info.value.reason == "unreadable" and "gone.jpg" in str(info.value)
    with pytest.raises(PhotoError) as info:
        load_photo(tmp_path, "folder")
    assert info.value.reason == "unreadable"


@pytest.mark.parametrize(
    "kwargs",
    [{"min_side": 0}, {"max_pixels": 10**9}, {"max_aspect": 0.5}, {"shared_share": 1.5}],
)
def test_config_refuses_bad_values_and_names_them(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError, match=next(iter(kwargs))):
        IntakeConfig(**kwargs)


def test_config_round_trips() -> None:
    config = IntakeConfig(min_side=300, matte=(0, 0, 0))
    assert IntakeConfig.from_dict(config.to_dict()) == config
