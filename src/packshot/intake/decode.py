"""Read one photo safely: sniff it, refuse bombs from the header, decode it fully, normalise it.

Every way a file can fail ends in a PhotoError whose message names the file and says what to
do, and whose `reason` is one of REASONS. Nothing here writes anywhere.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, features

from packshot.errors import PhotoError
from packshot.intake.colour import normalise
from packshot.intake.config import IntakeConfig
from packshot.intake.sniff import sniff

# The reason codes of PhotoError raised by intake, with what each means.
REASONS = {
    "empty": "the file has no bytes",
    "not_an_image": "the file is something else (a web page, an archive, text…)",
    "unsupported_type": "an image format intake doesn't take (SVG, PDF, TIFF, RAW…)",
    "heif_plugin_missing": "a HEIC photo, and the optional HEIC plugin is not installed",
    "truncated": "the file ends before the image does",
    "corrupt": "the image data is damaged",
    "too_large": "too many pixels (or bytes) to decode safely",
    "too_small": "the short side is under the minimum",
    "extreme_aspect": "a strip or panorama, over the maximum aspect ratio",
    "unreadable": "the file can't be read (permissions, a broken link…)",
}
HEIF_INSTALL = "pip install 'packshot[heif]'"


@dataclass
class NormalisedPhoto:
    """One accepted photo: sRGB pixels the right way up, its mask, and where it came from."""

    name: str  # file name as the merchant knows it (relative to the folder)
    image: Image.Image  # RGB, 8 bits, sRGB, no metadata; transparent areas filled with the matte
    mask: Image.Image | None  # L, from the alpha channel; None for photos without one
    format: str  # the decoded format: JPEG, PNG, WEBP, GIF, HEIF, AVIF
    sha256: str  # of the file's bytes
    stored_size: tuple[int, int]  # (width, height) as stored, before EXIF orientation
    conversions: list[str] = field(default_factory=list)  # e.g. ["exif_orientation_6", "cmyk"]
    notes: list[str] = field(default_factory=list)  # sentences for the merchant

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def read_file(path: Path, name: str, config: IntakeConfig) -> bytes:
    """The bytes of `path`, refusing what can't or shouldn't be read whole."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise PhotoError(f"{name} is not a regular file: add the photo itself.", "unreadable")
        if size > config.max_file_bytes:
            raise PhotoError(
                f"{name} is {size / 2**20:.0f} MB, over the limit of "
                f"{config.max_file_bytes / 2**20:.0f} MB: export it as a JPEG and add it again.",
                "too_large",
            )
        with path.open("rb") as f:
            return f.read(config.max_file_bytes + 1)
    except OSError as exc:
        raise PhotoError(
            f"{name} could not be read ({exc.strerror or exc}): check that the file exists and "
            "that you may read it.",
            "unreadable",
        ) from None


def load_photo(
    source: str | os.PathLike[str] | bytes,
    name: str | None = None,
    config: IntakeConfig | None = None,
) -> NormalisedPhoto:
    """Decode and normalise one photo from a path or from bytes (an upload).

    Raises PhotoError (with `.reason` from REASONS) when the photo can't be used.
    """
    config = config or IntakeConfig()
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        name = name or "upload"
    else:
        path = Path(source)
        name = name or path.name
        data = read_file(path, name, config)
    return decode_photo(data, name, config)


def decode_photo(data: bytes, name: str, config: IntakeConfig) -> NormalisedPhoto:
    """The steps of `load_photo` once the bytes are in memory."""
    # 1. Cheap refusals: no bytes, too many bytes, not an image we take.
    if not data:
        raise PhotoError(
            f"{name} is empty (0 bytes): copy the photo again from your camera or phone.", "empty"
        )
    if len(data) > config.max_file_bytes:
        raise PhotoError(
            f"{name} is over the limit of {config.max_file_bytes / 2**20:.0f} MB: export it as a "
            "JPEG and add it again.",
            "too_large",
        )
    kind = sniff(data)
    if kind.format is None:
        raise PhotoError(
            f"{name} is {kind.what}, not a photo packshot can use{_disguise(name)}: {kind.advice}.",
            kind.reason or "not_an_image",
        )
    if kind.format == "HEIF":
        _require_heif(name)
    elif kind.format == "AVIF":
        _require_avif(name)

    # 2. Open: parses the header only. Its size decides, before any pixel is decoded.
    # (catch_warnings changes process-wide state: intake decodes one photo at a time.)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind.format])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(
            f"{name} declares more pixels than can be decoded safely (a decompression bomb or "
            "an enormous image): scale it down to at most "
            f"{config.max_pixels / 1e6:.0f} megapixels and add it again.",
            "too_large",
        ) from None
    except Exception as exc:  # Pillow raises many kinds on malformed headers
        raise _decode_error(name, kind.what, exc, len(data)) from None
    width, height = image.size
    _check_size(name, width, height, config)

    # 3. Decode every pixel (of the first frame), so damage shows now, not during training.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except MemoryError:
        raise PhotoError(
            f"{name} is too large to decode in the memory available: scale it down.", "too_large"
        ) from None
    except Exception as exc:
        raise _decode_error(name, kind.what, exc, len(data)) from None

    # 4. Normalise: orientation, colour, bit depth, alpha, no metadata.
    try:
        result = normalise(image, config.matte)
    except MemoryError:
        raise PhotoError(
            f"{name} is too large to convert in the memory available: scale it down.", "too_large"
        ) from None
    except Exception as exc:  # a mode or profile combination Pillow can't convert
        raise PhotoError(
            f"{name} could not be converted to standard colours ({exc}): export it as an sRGB "
            "JPEG or PNG and add it again.",
            "corrupt",
        ) from None
    return NormalisedPhoto(
        name=name,
        image=result.image,
        mask=result.mask,
        format=kind.format,
        sha256=hashlib.sha256(data).hexdigest(),
        stored_size=(width, height),
        conversions=result.conversions,
        notes=result.notes,
    )


def _check_size(name: str, width: int, height: int, config: IntakeConfig) -> None:
    if width <= 0 or height <= 0:
        raise PhotoError(
            f"{name} declares an image of {width}×{height} px: the file is damaged; export or "
            "copy it again.",
            "corrupt",
        )
    if width * height > config.max_pixels:
        raise PhotoError(
            f"{name} is {width}×{height} px ({width * height / 1e6:.0f} megapixels), over the "
            f"limit of {config.max_pixels / 1e6:.0f} megapixels: scale it down (4000 px on the "
            "long side is plenty) and add it again.",
            "too_large",
        )
    short, long = min(width, height), max(width, height)
    if short < config.min_side:
        raise PhotoError(
            f"{name} is only {width}×{height} px: photos need at least {config.min_side} px on "
            "the short side; use the original, full-size photo (not a thumbnail or a "
            "screenshot).",
            "too_small",
        )
    if long / short > config.max_aspect:
        raise PhotoError(
            f"{name} is {width}×{height} px, a {long / short:.1f}:1 strip: crop it around the "
            f"product to at most {config.max_aspect:g}:1 and add it again.",
            "extreme_aspect",
        )


def _decode_error(name: str, what: str, exc: Exception, size: int) -> PhotoError:
    """Truncated or corrupt, from whatever Pillow raised."""
    message = str(exc)
    truncated = (
        isinstance(exc, EOFError | struct.error)
        or "truncated" in message.lower()
        or "premature end" in message.lower()
        or (isinstance(exc, zlib.error) and "incomplete" in message.lower())
        or size < 64  # nothing but a signature
    )
    if isinstance(exc, MemoryError) or "too large" in message.lower():
        return PhotoError(
            f"{name} is too large to decode safely: scale it down and add it again.", "too_large"
        )
    if truncated:
        return PhotoError(
            f"{name} is cut off: the file ends before the image does (an incomplete copy, upload "
            "or download); copy it again from the original.",
            "truncated",
        )
    detail = message.split("\n")[0][:80] or type(exc).__name__
    return PhotoError(
        f"{name} looks like {what} but its data is damaged ({detail}): export or copy it again "
        "from the original.",
        "corrupt",
    )


def _disguise(name: str) -> str:
    """Say "(whatever its .jpg name says)" when the name promises an image."""
    suffix = Path(name).suffix.lower()
    image_suffixes = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic", ".heif", ".avif"}
    return f" (whatever its {suffix} name says)" if suffix in image_suffixes else ""


def _require_heif(name: str) -> None:
    """Register pillow-heif's opener on first use; refuse the photo when it's not installed."""
    try:
        module = importlib.import_module("pillow_heif")
    except ImportError:
        raise PhotoError(
            f"{name} is a HEIC/HEIF photo (as iPhones take them) and the HEIC plugin is not "
            f"installed: install packshot[heif] ({HEIF_INSTALL}), or export the photo as JPEG.",
            "heif_plugin_missing",
        ) from None
    if "HEIF" not in Image.OPEN:
        module.register_heif_opener()


def _require_avif(name: str) -> None:
    """Pillow reads AVIF itself since 11.2; older ones need pillow-heif's AVIF opener."""
    if features.check("avif"):
        return
    try:
        module = importlib.import_module("pillow_heif")
        module.register_avif_opener()
    except (ImportError, AttributeError):
        raise PhotoError(
            f"{name} is an AVIF photo and this installation can't read AVIF: install "
            f"packshot[heif] ({HEIF_INSTALL}) or a newer Pillow, or export the photo as JPEG.",
            "heif_plugin_missing",
        ) from None
