"""Turn any decoded photo into 8-bit sRGB pixels the right way up, with alpha as a mask."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps

_ORIENTATION = 0x0112  # the EXIF tag
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# What an embedded ICC profile must describe for each colour mode.
_PROFILE_SPACE = {"RGB": "RGB", "CMYK": "CMYK", "L": "GRAY"}


@dataclass
class Normalised:
    """The pixels of one photo after normalisation, and what it took."""

    image: Image.Image  # RGB, 8 bits, sRGB, metadata-free; transparent areas filled with the matte
    mask: Image.Image | None  # L, the alpha channel, when the photo has a (non-trivial) one
    conversions: list[str] = field(default_factory=list)  # e.g. ["exif_orientation", "cmyk"]
    notes: list[str] = field(default_factory=list)  # sentences for the merchant


def normalise(image: Image.Image, matte: tuple[int, int, int]) -> Normalised:
    """EXIF orientation, colour through the ICC profile to sRGB, 16→8 bits, alpha → mask."""
    conversions: list[str] = []
    notes: list[str] = []
    icc = image.info.get("icc_profile")

    # 1. The right way up.
    image = _apply_orientation(image, conversions, notes)

    # 2. Bring every mode to L, RGB, CMYK or LAB, plus an optional alpha channel.
    transparency = "transparency" in image.info
    image = _to_8_bits(image, conversions)
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if transparency else "RGB")
        conversions.append("palette")
    elif image.mode in ("L", "RGB") and transparency:
        image = image.convert("LA" if image.mode == "L" else "RGBA")
    elif image.mode in ("PA", "RGBa"):
        image = image.convert("RGBA")
    elif image.mode == "La":
        image = image.convert("LA")
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "LAB"):
        conversions.append(f"mode_{image.mode.lower()}")  # YCbCr, HSV, …
        image = image.convert("RGB")
    alpha = None
    if image.mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        image = image.convert(image.mode[:-1])
    if image.mode == "CMYK":
        conversions.append("cmyk")

    # 3. Colour to sRGB, through the embedded profile when there is one.
    rgb = _to_srgb(image, icc, conversions, notes)

    # 4. Alpha: a mask when it says something, composited over the matte.
    mask = None
    if alpha is not None:
        lo, hi = alpha.getextrema()
        if lo == 255:
            conversions.append("opaque_alpha_dropped")
        elif hi == 0:
            notes.append("its transparency covers the whole photo, so it was ignored")
        else:
            mask = alpha
            a = np.asarray(alpha, dtype=np.float32)[..., None] / 255.0  # (H, W, 1)
            pixels = np.asarray(rgb, dtype=np.float32)
            pixels = pixels * a + np.asarray(matte, np.float32) * (1.0 - a)
            rgb = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
            conversions.append("alpha_mask")

    # 5. A fresh image: no EXIF, ICC, XMP, comments or other metadata travel on.
    clean = Image.fromarray(np.asarray(rgb, dtype=np.uint8), "RGB")
    clean_mask = None if mask is None else Image.fromarray(np.asarray(mask, np.uint8), "L")
    return Normalised(clean, clean_mask, conversions, notes)


def _apply_orientation(image: Image.Image, conversions: list[str], notes: list[str]) -> Image.Image:
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # malformed EXIF: Pillow raises many kinds; the pixels are still good
        notes.append("its EXIF data is damaged, so it is shown as stored (check it's upright)")
        return image
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rotated = ImageOps.exif_transpose(image)
    except Exception:
        notes.append("its EXIF orientation could not be applied (check it's upright)")
        return image
    if rotated is None:
        return image
    conversions.append(f"exif_orientation_{orientation}")
    return rotated


def _to_8_bits(image: Image.Image, conversions: list[str]) -> Image.Image:
    """16-bit grey (I;16…, I) and float (F) images to 8-bit L; other modes pass through."""
    if image.mode.startswith("I"):
        pixels = np.asarray(image).astype(np.float64)
        # PNG and HEIF store up to 16 bits; 65535 / 257 = 255 exactly.
        scaled = np.clip(pixels / 257.0 + 0.5, 0, 255).astype(np.uint8)
        conversions.append("16_bit")
    elif image.mode == "F":
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if pixels.max(initial=0) <= 1.0 else 1.0
        scaled = np.clip(pixels * scale + 0.5, 0, 255).astype(np.uint8)
        conversions.append("float")
    else:
        return image
    return Image.fromarray(scaled, "L")


def _to_srgb(
    image: Image.Image, icc: bytes | None, conversions: list[str], notes: list[str]
) -> Image.Image:
    if image.mode == "LAB":
        conversions.append("lab")
        lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        return ImageCms.profileToProfile(image, lab, _SRGB, outputMode="RGB")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            space = source.profile.xcolor_space.strip()
            description = (source.profile.profile_description or "").strip()
            if space != _PROFILE_SPACE.get(image.mode):
                notes.append(
                    f"its colour profile is for {space}, not {image.mode}, so it was ignored"
                )
            elif image.mode == "RGB" and description.lower().startswith("srgb"):
                return image  # already sRGB: nothing to convert
            else:
                converted = ImageCms.profileToProfile(
                    image,
                    source,
                    _SRGB,
                    renderingIntent=ImageCms.Intent.PERCEPTUAL,
                    outputMode="RGB",
                )
                if converted is not None:
                    conversions.append(f"icc:{description or 'unnamed profile'}")
                    return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            notes.append("its colour profile could not be read, so colours may be slightly off")
    if image.mode == "CMYK":
        conversions.append("cmyk_without_profile")
    return image.convert("RGB")
