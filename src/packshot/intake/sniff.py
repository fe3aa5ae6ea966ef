"""What a file really is, from its first bytes (magic numbers), never from its name."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Formats intake decodes, by Pillow format name.
SUPPORTED = ("JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF")

# ISO base media (ftyp) brands of still HEIF/AVIF images.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V ", b"3gp4", b"3gp5", b"dash"}


@dataclass(frozen=True)
class Sniffed:
    """The verdict on a file's first bytes.

    `format` is a Pillow format name from SUPPORTED when intake can decode the file;
    otherwise `reason` ("not_an_image" or "unsupported_type") and `what` (e.g. "a PDF
    document") say why not, and `advice` what to do instead.
    """

    format: str | None
    what: str
    reason: str | None = None
    advice: str = ""


_EXPORT = "export it as JPEG or PNG"
_USE_PHOTOS = "use the product photos themselves (JPEG, PNG, WebP or HEIC)"


def sniff(data: bytes) -> Sniffed:
    """Identify `data` by its magic bytes."""
    head = data[:64]
    # 1. The formats we decode.
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("JPEG", "a JPEG photo")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("PNG", "a PNG image")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("WEBP", "a WebP image")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("GIF", "a GIF image")
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(data)

    # 2. Images we recognise but don't take.
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _unsupported("a TIFF image or a camera RAW file", _EXPORT)
    if head[:2] == b"BM":
        return _unsupported("a BMP image", _EXPORT)
    if head[:4] == b"8BPS":
        return _unsupported("a Photoshop document", _EXPORT)
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return _unsupported("a JPEG XL image", _EXPORT)
    if head[:4] == b"\x00\x00\x01\x00":
        return _unsupported("an icon file", "use a full-size photo of the product")
    if head[:4] == b"%PDF":
        return _unsupported("a PDF document", "export the photo inside it as JPEG or PNG")
    if head[:4] == b"%!PS" or head[:4] == b"\xc5\xd0\xd3\xc6":
        return _unsupported("a PostScript/EPS file", _EXPORT)

    # 3. Things that are not images at all.
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return _not_image("a ZIP archive (or an Office document)", "unpack it and add the photos")
    if head[:4] == b"Rar!" or head[:6] == b"7z\xbc\xaf\x27\x1c" or head[:2] == b"\x1f\x8b":
        return _not_image("a compressed archive", "unpack it and add the photos")
    if head[:5] == b"{\\rtf":
        return _not_image("a text document", _USE_PHOTOS)

    text = _text_head(data)
    if text is not None:
        if "<svg" in text:
            return _unsupported("an SVG drawing (vector graphics)", "export it as PNG")
        if "<html" in text or "<!doctype html" in text or "<head" in text or "<body" in text:
            return _not_image(
                "a web page (HTML)",
                "it was probably saved instead of the photo; open the page and save the photo",
            )
        return _not_image("a text file", _USE_PHOTOS)
    return _not_image("a file of unknown type", _USE_PHOTOS)


def _sniff_ftyp(data: bytes) -> Sniffed:
    """HEIF/AVIF stills and MP4/MOV videos share the ISO base media `ftyp` box."""
    size = struct.unpack(">I", data[:4])[0]
    box = data[8 : min(max(size, 16), 256)]
    brands = {box[:4]} | {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return Sniffed("AVIF", "an AVIF image")
    if brands & _HEIF_BRANDS:
        return Sniffed("HEIF", "a HEIC photo")
    if box[:3] == b"crx":
        return _unsupported("a Canon RAW (CR3) file", _EXPORT)
    if brands & _VIDEO_BRANDS:
        return _not_image("a video", "take still photos of the product (or export video frames)")
    return _not_image("a media file of unknown type", _USE_PHOTOS)


def _text_head(data: bytes) -> str | None:
    """The start of `data` lower-cased, when it reads as text; else None."""
    head = data[:2048]
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        if head.startswith(bom):
            encoding = "utf-8" if bom == b"\xef\xbb\xbf" else "utf-16"
            return head.decode(encoding, errors="ignore").lower()
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off at the end of the sample is still text.
        if exc.start < len(head) - 4:
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    if not text or printable < 0.95 * len(text):
        return None
    return text.lower()


def _unsupported(what: str, advice: str) -> Sniffed:
    return Sniffed(None, what, "unsupported_type", advice)


def _not_image(what: str, advice: str) -> Sniffed:
    return Sniffed(None, what, "not_an_image", advice)
