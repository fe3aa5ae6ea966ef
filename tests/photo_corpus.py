"""Synthetic product photos and a corpus of bad and odd files, built offline for tests and demos.

`render_product` draws a shopping bag (a lit 3D box with a handle, a logo and stripes) from
any angle, on a chosen background, at a chosen place; `varied_set`, `same_background_set` and
`same_angle_set` build photo sets; `bad_files` and `odd_files` build files that intake must
reject or accept, each with what intake should make of it.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

Colour = tuple[int, int, int]
BACKGROUNDS: dict[str, Colour] = {
    "white": (245, 245, 245),
    "light grey": (200, 200, 200),
    "dark": (30, 30, 30),
    "green": (40, 120, 60),
    "blue": (90, 130, 200),
    "beige": (225, 205, 170),
}
# (yaw, pitch) in degrees: a merchant walking around the product.
VIEWS: list[tuple[float, float]] = [
    (0, 10),
    (45, 20),
    (90, 15),
    (135, 30),
    (180, 10),
    (225, 25),
    (270, 5),
    (315, 35),
    (20, 55),
    (160, 40),
    (250, 50),
    (70, -5),
]


def render_product(
    size: tuple[int, int] = (768, 768),
    *,
    yaw: float = 30.0,
    pitch: float = 20.0,
    centre: tuple[float, float] = (0.5, 0.5),
    scale: float = 0.45,
    background: str | Colour = "white",
    colour: Colour = (200, 40, 40),
    seed: int = 0,
) -> Image.Image:
    """A photo of a shopping bag seen from (`yaw`, `pitch`), RGB.

    `centre` is where the bag's middle lands, as fractions of the width and height; `scale`
    is its height as a fraction of the short side. `background` is a name from BACKGROUNDS,
    "wood", "noise", or an RGB colour. Mild sensor noise makes it look (and measure) like a
    sharp photo.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    canvas = Image.fromarray(_background_pixels(size, background, rng))
    draw = ImageDraw.Draw(canvas)
    silhouette = Image.new("L", size, 0)  # where the bag is, for its fabric texture
    outline = ImageDraw.Draw(silhouette)
    rotation = _rotation(yaw, pitch)
    unit = scale * min(width, height) / 1.6  # px per model unit; the bag is ~1.6 units tall
    cx, cy = centre[0] * width, centre[1] * height

    def project(points: np.ndarray) -> list[tuple[float, float]]:
        turned = points @ rotation.T  # (N, 3)
        return [(cx + unit * x, cy - unit * y) for x, y, _ in turned]

    bw, bh, bd = 1.0, 1.3, 0.5  # the bag's width, height and depth
    corners = np.array(
        [[x, y, z] for x in (-bw / 2, bw / 2) for y in (-bh / 2, bh / 2) for z in (-bd / 2, bd / 2)]
    )
    faces = {  # corner indices, outward normal, shade
        "front": ([1, 3, 7, 5], (0, 0, 1), 1.0),
        "back": ([0, 4, 6, 2], (0, 0, -1), 0.6),
        "left": ([0, 2, 3, 1], (-1, 0, 0), 0.75),
        "right": ([4, 5, 7, 6], (1, 0, 0), 0.85),
        "top": ([2, 6, 7, 3], (0, 1, 0), 1.15),
        "bottom": ([0, 1, 5, 4], (0, -1, 0), 0.5),
    }
    # The handle: an arc over the top, drawn first so the box covers its ends.
    t = np.linspace(0, math.pi, 24)
    handle = np.stack([0.3 * np.cos(t), bh / 2 + 0.35 * np.sin(t), np.zeros_like(t)], axis=1)
    draw.line(project(handle), fill=(60, 60, 60), width=max(2, int(unit * 0.08)))
    for name, (index, normal, shade) in faces.items():
        facing = float((np.array(normal) @ rotation.T)[2])
        if facing <= 0:
            continue  # faces away from the camera
        fill = tuple(int(min(255, c * shade)) for c in colour)
        draw.polygon(project(corners[index]), fill=fill, outline=(40, 10, 10))
        outline.polygon(project(corners[index]), fill=255)
        if name == "front":  # a round logo and four stripes
            a = np.linspace(0, 2 * math.pi, 40)
            logo = np.stack(
                [0.25 * np.cos(a) - 0.1, 0.25 * np.sin(a) + 0.2, np.full_like(a, bd / 2)], 1
            )
            draw.polygon(project(logo), fill=(240, 220, 60))
            for k in range(4):
                y = -0.2 - 0.1 * k
                stripe = np.array([[-0.4, y, bd / 2], [0.4, y, bd / 2]])
                draw.line(project(stripe), fill=(250, 250, 250), width=max(1, int(unit * 0.02)))
        if name in ("left", "right"):  # a seam
            x = bw / 2 if name == "right" else -bw / 2
            seam = np.array([[x, -0.5, 0], [x, 0.5, 0]])
            draw.line(project(seam), fill=(30, 30, 30), width=max(1, int(unit * 0.03)))
    pixels = np.asarray(canvas).astype(np.float32)
    # A woven fabric: ±10% brightness in a 4 px grid, plus fibres, on the bag only.
    y, x = np.mgrid[0:height, 0:width]
    weave = 0.1 * np.sin(x * math.pi / 2) * np.sin(y * math.pi / 2)
    weave += rng.normal(0, 0.04, (height, width))
    on_bag = np.asarray(silhouette, np.float32)[..., None] / 255.0
    pixels *= 1 + weave[..., None] * on_bag
    pixels += rng.normal(0, 3, pixels.shape)  # sensor noise, σ = 3 levels
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def varied_set(
    n: int = 8, *, size: tuple[int, int] = (640, 640), seed: int = 0
) -> list[Image.Image]:
    """A good set: every photo from another angle, on another background, framed differently."""
    rng = np.random.default_rng(seed)
    backgrounds = [*BACKGROUNDS, "wood"]
    return [
        render_product(
            size,
            yaw=VIEWS[i % len(VIEWS)][0],
            pitch=VIEWS[i % len(VIEWS)][1],
            centre=(rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.6)),
            scale=rng.uniform(0.35, 0.55),
            background=backgrounds[i % len(backgrounds)],
            seed=seed + i,
        )
        for i in range(n)
    ]


def same_background_set(
    n: int = 8,
    background: str | Colour = "white",
    *,
    size: tuple[int, int] = (640, 640),
    seed: int = 0,
) -> list[Image.Image]:
    """Every photo from another angle, all on the same backdrop."""
    rng = np.random.default_rng(seed)
    return [
        render_product(
            size,
            yaw=VIEWS[i % len(VIEWS)][0],
            pitch=VIEWS[i % len(VIEWS)][1],
            centre=(rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.6)),
            scale=rng.uniform(0.35, 0.55),
            background=background,
            seed=seed + i,
        )
        for i in range(n)
    ]


def same_angle_set(
    n: int = 8,
    *,
    yaw: float = 30.0,
    pitch: float = 20.0,
    size: tuple[int, int] = (640, 640),
    seed: int = 0,
) -> list[Image.Image]:
    """Every photo from the same angle, on different plain backdrops, framed differently."""
    rng = np.random.default_rng(seed)
    names = list(BACKGROUNDS)
    return [
        render_product(
            size if i % 2 else (size[0] * 4 // 3, size[1]),
            yaw=yaw,
            pitch=pitch,
            centre=(rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.6)),
            scale=rng.uniform(0.35, 0.55),
            background=names[i % len(names)],
            seed=seed + i,
        )
        for i in range(n)
    ]


def encode(image: Image.Image, format: str = "JPEG", **options: Any) -> bytes:
    """The image saved to bytes in `format` (Pillow's names and options)."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def write_photos(
    folder: Path, images: Sequence[Image.Image], *, prefix: str = "photo"
) -> list[Path]:
    """Save images as `prefix-00.jpg`, `prefix-01.jpg`… in `folder`; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}-{i:02d}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


# The frames `mixed_aspect_copies` cuts, width:height, in the order of the photos' names:
# two portraits (2:3), two squares, a 16:9 banner and a 3:2 landscape. At 96 px they fill four
# aspect buckets, two of them with two photos (a batch of 2) and two with one.
MIXED_FRAMES: tuple[tuple[int, int], ...] = ((2, 3), (1, 1), (16, 9), (2, 3), (3, 2), (1, 1))


def mixed_aspect_copies(source: Path, folder: Path) -> Path:
    """Copies of the (square) photos in `source`, each cut around its middle to the frame of
    MIXED_FRAMES at its place: a set whose photos go to different aspect buckets."""
    folder.mkdir(parents=True, exist_ok=True)
    for path, (w, h) in zip(sorted(source.glob("*.jpg")), MIXED_FRAMES, strict=True):
        with Image.open(path) as image:
            width, height = image.size
            scale = min(width / w, height / h)
            crop_w, crop_h = round(w * scale), round(h * scale)
            left, top = (width - crop_w) // 2, (height - crop_h) // 2
            image.crop((left, top, left + crop_w, top + crop_h)).save(
                folder / path.name, quality=92
            )
    return folder


# ---------------------------------------------------------------------------------------
# Odd but valid encodings.


def jpeg_with_orientation(image: Image.Image, orientation: int = 6) -> bytes:
    """A JPEG whose pixels are stored turned, with the EXIF tag that turns them back."""
    # The inverse of what EXIF orientation `orientation` asks a viewer to do.
    undo = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT],
        3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM],
        5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_90],
        7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_270],
    }[orientation]
    stored = image
    for method in undo:
        stored = stored.transpose(method)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def cmyk_image(size: tuple[int, int] = (400, 300)) -> Image.Image:
    """A CMYK image: left half pure cyan ink, right half bare paper, a black bar at the top."""
    width, height = size
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[:, : width // 2, 0] = 255  # cyan
    pixels[: height // 6, :, 3] = 255  # black
    return Image.fromarray(pixels, "CMYK")


# What the corners of `cmyk_icc_profile` look like, in sRGB: real inks, not Pillow's naive
# formula (which makes 100% cyan (0, 255, 255)).
INKS: dict[str, Colour] = {
    "paper": (255, 255, 255),
    "cyan": (0, 160, 230),
    "magenta": (230, 0, 126),
    "yellow": (255, 240, 0),
    "black": (35, 31, 32),
}


def cmyk_icc_profile() -> bytes:
    """A small but real ICC v2 CMYK profile (a 2-point lut8 A2B0 table to CIELAB).

    Overprinting inks multiply; the corners are the INKS colours, so a converter that uses
    the profile turns 100% cyan into INKS["cyan"], not Pillow's naive (0, 255, 255).
    """
    inks = [INKS["cyan"], INKS["magenta"], INKS["yellow"], INKS["black"]]
    clut = bytearray()
    for c in (0, 1):  # the first input channel varies slowest
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = np.ones(3)
                    for on, ink in zip((c, m, y, k), inks, strict=True):
                        if on:
                            rgb *= np.array(ink) / 255.0
                    lightness, a, b = _srgb_to_lab_d50(rgb)
                    clut += bytes([_byte(lightness * 255 / 100), _byte(a + 128), _byte(b + 128)])
    ramp = bytes(range(256))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + identity + ramp * 4 + bytes(clut) + ramp * 3
    return _icc_profile(
        b"prtr",
        b"CMYK",
        b"Lab ",
        {
            b"desc": _desc("packshot test CMYK"),
            b"cprt": _text("No copyright, use freely"),
            b"wtpt": _xyz(0.9642, 1.0, 0.8249),
            b"A2B0": lut,
        },
    )


def swapped_rgb_icc_profile() -> bytes:
    """An RGB matrix/TRC profile with sRGB's red and blue primaries swapped.

    Stored (0, 0, 255) with this profile means sRGB red: only a converter that applies the
    profile gets it right.
    """
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    gamma = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    return _icc_profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"desc": _desc("packshot test swapped RGB"),
            b"cprt": _text("No copyright, use freely"),
            b"wtpt": _xyz(0.9642, 1.0, 0.8249),
            b"rXYZ": _xyz(*blue),
            b"gXYZ": _xyz(*green),
            b"bXYZ": _xyz(*red),
            b"rTRC": gamma,
            b"gTRC": gamma,
            b"bTRC": gamma,
        },
    )


def png_16bit_grey(size: tuple[int, int] = (400, 300)) -> bytes:
    """A 16-bit greyscale PNG: a horizontal ramp from 0 to 65535."""
    width, height = size
    ramp = np.linspace(0, 65535, width).astype(np.uint16)
    pixels = np.tile(ramp, (height, 1))
    return encode(Image.fromarray(pixels), "PNG")  # mode I;16


def png_16bit_rgb(image: Image.Image) -> bytes:
    """`image` as a 16-bit-per-channel RGB PNG (written by OpenCV; Pillow can't)."""
    pixels = np.asarray(image.convert("RGB")).astype(np.uint16) * 257  # 255 → 65535
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels[..., ::-1]))  # OpenCV is BGR
    assert ok
    return data.tobytes()


def rgba_png(image: Image.Image, mask: Image.Image) -> bytes:
    """A PNG with `mask` as its alpha channel."""
    rgba = image.convert("RGB")
    rgba.putalpha(mask)
    return encode(rgba, "PNG")


def product_with_mask(
    size: tuple[int, int] = (600, 400), box: tuple[int, int, int, int] = (350, 100, 550, 300)
) -> tuple[Image.Image, Image.Image]:
    """A product on garbage pixels and its exact mask (an ellipse filling `box`)."""
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    ImageDraw.Draw(image).ellipse(box, fill=(20, 90, 200))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return image, mask


def animated_gif(size: tuple[int, int] = (400, 300)) -> bytes:
    """A 3-frame GIF: red, then green, then blue. Intake keeps the first frame."""
    frames = [Image.new("RGB", size, c) for c in ((220, 20, 20), (20, 220, 20), (20, 20, 220))]
    for frame in frames:
        ImageDraw.Draw(frame).rectangle((20, 20, 120, 120), fill=(255, 255, 255))
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def heic(image: Image.Image) -> bytes | None:
    """`image` as HEIC, or None when pillow-heif (with an HEVC encoder) isn't installed."""
    try:
        import pillow_heif
    except ImportError:
        return None
    try:
        heif = pillow_heif.from_pillow(image.convert("RGB"))
        buffer = io.BytesIO()
        heif.save(buffer, format="HEIF", quality=90)
    except (OSError, RuntimeError, ValueError, KeyError):
        return None
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------
# Bad files.


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header declares `width` × `height` pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    row = b"\x00" + bytes(3 * min(width, 64))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * 4))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_declaring(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF) is rewritten to declare `width` × `height`."""
    out = bytearray(data)
    i = 2
    while i < len(out) - 9:
        marker = out[i + 1]
        length = struct.unpack(">H", out[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            out[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        i += 2 + length
    raise ValueError("no SOF marker found")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first `keep` share of `data`: an interrupted copy."""
    return data[: int(len(data) * keep)]


def corrupted(data: bytes, length: int = 1000, seed: int = 0) -> bytes:
    """`data` with `length` random bytes written over its middle."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    start = len(out) // 2
    out[start : start + length] = rng.integers(
        0, 256, min(length, len(out) - start), dtype=np.uint8
    ).tobytes()
    return bytes(out)


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600">'
    b'<rect width="800" height="600" fill="red"/></svg>\n'
)
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Product photo</title></head>"
    b'<body><img src="photo.jpg"></body></html>\n'
)


def zip_of(files: dict[str, bytes]) -> bytes:
    """A ZIP archive holding `files`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class CorpusFile:
    """A file for intake to judge: `reason` None means it must be accepted.

    `expect` holds checks on the accepted photo: "size" (width, height after orientation),
    "mask" (bool), "conversion" (a prefix of one of its conversions), "pixel" and "pixel2"
    ((x, y), (r, g, b)): the colour there, within ±24 per channel.
    """

    name: str
    data: bytes
    reason: str | None
    expect: dict[str, Any] = field(default_factory=dict)


MARKS: dict[str, Colour] = {"top left": (230, 20, 20), "bottom right": (20, 20, 230)}


def sample_photo(size: tuple[int, int] = (400, 300), seed: int = 0) -> Image.Image:
    """A small product photo for corpus files, marked red top left and blue bottom right."""
    image = render_product(size, yaw=35, pitch=20, scale=0.6, background="light grey", seed=seed)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, 0, 39, 39), fill=MARKS["top left"])
    draw.rectangle((width - 40, height - 40, width - 1, height - 1), fill=MARKS["bottom right"])
    return image


def bad_files() -> list[CorpusFile]:
    """Files intake must reject, one of each kind, with the reason code it must give."""
    photo = sample_photo()
    jpeg = encode(photo, "JPEG", quality=90)
    png = encode(photo, "PNG")
    return [
        CorpusFile("drawing.svg", SVG, "unsupported_type"),
        CorpusFile("drawing.jpg", SVG, "unsupported_type"),
        CorpusFile("catalogue.pdf", PDF, "unsupported_type"),
        CorpusFile("page.jpg", HTML, "not_an_image"),
        CorpusFile("photos.jpg", zip_of({"a.jpg": jpeg}), "not_an_image"),
        CorpusFile("notes.png", b"Ceci n'est pas une photo.\n", "not_an_image"),
        CorpusFile("random.jpg", np.random.default_rng(1).bytes(5000), "not_an_image"),
        CorpusFile("scan.tif", encode(photo, "TIFF"), "unsupported_type"),
        CorpusFile("old.bmp", encode(photo, "BMP"), "unsupported_type"),
        CorpusFile("empty.jpg", b"", "empty"),
        CorpusFile("cut.jpg", truncated(jpeg), "truncated"),
        CorpusFile("cut.png", truncated(png), "truncated"),
        CorpusFile("only-signature.png", png[:8], "truncated"),
        CorpusFile("damaged.jpg", corrupted(jpeg), "corrupt"),
        CorpusFile("damaged.png", corrupted(png, 100), "corrupt"),
        CorpusFile("bomb.png", png_bomb(30_000, 30_000), "too_large"),
        CorpusFile("56mp.jpg", jpeg_declaring(jpeg, 8000, 7000), "too_large"),
        CorpusFile("thumbnail.jpg", encode(sample_photo((200, 150)), "JPEG"), "too_small"),
        CorpusFile("strip.jpg", encode(sample_photo((1500, 300)), "JPEG"), "extreme_aspect"),
    ]


def odd_files() -> list[CorpusFile]:
    """Unusual but valid photos intake must accept, with what it must make of them."""
    photo = sample_photo()
    rgb = np.asarray(photo)
    files = [
        CorpusFile(
            "cmyk-profile.jpg",
            encode(cmyk_image(), "JPEG", quality=95, icc_profile=cmyk_icc_profile()),
            None,
            {"size": (400, 300), "conversion": "icc:", "pixel": ((100, 200), INKS["cyan"])},
        ),
        CorpusFile(
            "cmyk-plain.jpg",
            encode(cmyk_image(), "JPEG", quality=95),
            None,
            {"conversion": "cmyk_without_profile", "pixel": ((100, 200), (0, 255, 255))},
        ),
        CorpusFile(
            "swapped-profile.png",
            encode(
                Image.new("RGB", (400, 300), (0, 0, 255)),
                "PNG",
                icc_profile=swapped_rgb_icc_profile(),
            ),
            None,
            {"conversion": "icc:", "pixel": ((200, 150), (255, 0, 0))},
        ),
        CorpusFile(
            "grey-16bit.png",
            png_16bit_grey(),
            None,
            {"conversion": "16_bit", "pixel": ((399, 10), (255, 255, 255))},
        ),
        CorpusFile(
            "rgb-16bit.png",
            png_16bit_rgb(photo),
            None,
            {"size": (400, 300), "pixel": ((5, 5), tuple(int(v) for v in rgb[5, 5]))},
        ),
        CorpusFile(
            "palette.png",
            encode(photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG"),
            None,
            {"conversion": "palette"},
        ),
        CorpusFile(
            "cut-out.png",
            rgba_png(*product_with_mask()),
            None,
            {"mask": True, "pixel": ((10, 10), (255, 255, 255))},  # transparent → the matte
        ),
        CorpusFile(
            "opaque-alpha.png",
            rgba_png(photo, Image.new("L", photo.size, 255)),
            None,
            {"mask": False},
        ),
        CorpusFile("progressive.jpg", encode(photo, "JPEG", progressive=True), None),
        CorpusFile(
            "turned.jpg",
            jpeg_with_orientation(photo, 6),
            None,
            {
                "size": (400, 300),
                "conversion": "exif_orientation_6",
                "pixel": ((10, 10), MARKS["top left"]),
                "pixel2": ((389, 289), MARKS["bottom right"]),
            },
        ),
        CorpusFile("photo.webp", encode(photo, "WEBP", quality=90), None, {"size": (400, 300)}),
        CorpusFile(
            "animated.gif",
            animated_gif(),
            None,
            {"pixel": ((300, 200), (220, 20, 20))},  # the first frame is red
        ),
        CorpusFile("café_ñ_日本.jpg", encode(photo, "JPEG"), None),
        CorpusFile("no-extension", encode(photo, "JPEG"), None),
        CorpusFile("really-a-png.jpg", encode(photo, "PNG"), None),
        CorpusFile("photo.avif", encode(photo, "AVIF", quality=90), None, {"size": (400, 300)}),
    ]
    heic_data = heic(photo)
    if heic_data is not None:
        files.append(CorpusFile("iphone.heic", heic_data, None, {"size": (400, 300)}))
    return files


def write_files(folder: Path, files: Sequence[CorpusFile]) -> Path:
    """Write corpus files into `folder` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).write_bytes(f.data)
    return folder


# ---------------------------------------------------------------------------------------
# Helpers.


def _background_pixels(
    size: tuple[int, int], kind: str | Colour, rng: np.random.Generator
) -> np.ndarray:
    width, height = size
    if isinstance(kind, tuple):
        return np.broadcast_to(np.array(kind, np.uint8), (height, width, 3)).copy()
    if kind in BACKGROUNDS:
        return np.broadcast_to(np.array(BACKGROUNDS[kind], np.uint8), (height, width, 3)).copy()
    if kind == "wood":
        x = np.linspace(0, 30, width)[None, :] + 3 * np.sin(np.linspace(0, 9, height))[:, None]
        grain = 0.5 + 0.5 * np.sin(x + rng.normal(0, 0.3, (height, width)))
        return (np.array([150, 100, 60]) * (0.7 + 0.3 * grain[..., None])).astype(np.uint8)
    if kind == "noise":
        blocks = rng.normal(0, 1, (height // 16 + 1, width // 16 + 1, 3))
        big = np.kron(blocks, np.ones((16, 16, 1)))[:height, :width]
        return np.clip(120 + 50 * big, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown background {kind!r}: use {', '.join(BACKGROUNDS)}, wood or noise")


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    y, p = math.radians(yaw), math.radians(pitch)
    turn = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return tilt @ turn


def _srgb_to_lab_d50(rgb: np.ndarray) -> tuple[float, float, float]:
    """sRGB (0–1) to CIELAB relative to D50, the ICC connection space."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz_d50 = np.array(  # sRGB primaries, Bradford-adapted to D50
        [
            [0.4360747, 0.3850649, 0.1430804],
            [0.2225045, 0.7168786, 0.0606169],
            [0.0139322, 0.0971045, 0.7141733],
        ]
    )
    xyz = to_xyz_d50 @ linear / np.array([0.9642, 1.0, 0.8249])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return float(116 * f[1] - 16), float(500 * (f[0] - f[1])), float(200 * (f[1] - f[2]))


def _icc_profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """An ICC v2.1 profile: a 128-byte header, a tag table, 4-byte-aligned tag data."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = struct.pack(">I", len(tags)), b""
    for signature, data in tags.items():
        padded = data + bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + bytes(4)  # preferred CMM
        + struct.pack(">I", 0x02100000)  # version 2.1
        + device_class
        + space
        + pcs
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8)  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)  # D50
        + bytes(4 + 16 + 28)  # creator, profile id, reserved
    )
    assert len(header) == 128
    return header + table + body


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # no Unicode description
        + struct.pack(">HB", 0, 0)  # no ScriptCode description
        + bytes(67)
    )


def _text(text: str) -> bytes:
    return b"text" + bytes(4) + text.encode("ascii") + b"\0"


def _byte(value: float) -> int:
    return int(min(255, max(0, round(value))))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
