"""The contact sheet (every shot in one captioned grid) and `shoot.json`, the shoot's summary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

CELL_SIZE = 256  # longest side of a shot on the sheet, in pixels
# Shots smaller than this (the tiny stand-ins' 64 px) are enlarged to it, so that their
# captions ("lifestyle · seed 3 · DINO 0.612") still fit under them.
MIN_CELL_SIZE = 192
CAPTION_HEIGHT = 20  # one line of PIL's default font, with a margin
GAP = 4  # pixels between cells and around the sheet
BACKGROUND = (255, 255, 255)
CAPTION_COLOUR = (40, 40, 40)

# What a studio charges per finished product photo, in GBP: the figure merchants compare with.
STUDIO_PRICE_PER_PHOTO = 10.0
# A rented GPU, GBP per hour: about what an on-demand A100/H100 costs at cloud providers in
# 2025-26. Pass the real price of yours with `gpu_price_per_hour`.
GPU_PRICE_PER_HOUR = 2.50


@dataclass(frozen=True)
class SheetLayout:
    """Where the cells of a contact sheet go: `columns` x `rows` cells of one size."""

    columns: int
    rows: int
    cell_width: int
    cell_height: int  # the image part; the caption strip is below it

    @property
    def width(self) -> int:
        return self.columns * (self.cell_width + GAP) + GAP

    @property
    def height(self) -> int:
        return self.rows * (self.cell_height + CAPTION_HEIGHT + GAP) + GAP

    def origin(self, index: int) -> tuple[int, int]:
        """The top-left corner of cell `index` (row by row)."""
        row, column = divmod(index, self.columns)
        return (
            GAP + column * (self.cell_width + GAP),
            GAP + row * (self.cell_height + CAPTION_HEIGHT + GAP),
        )


def sheet_layout(sizes: list[tuple[int, int]], cell_size: int = CELL_SIZE) -> SheetLayout:
    """The grid for shots of these (width, height) sizes: about square, columns first.

    Every cell is as large as the largest shot scaled to fit `cell_size`; shots smaller than
    MIN_CELL_SIZE are enlarged to it.
    """
    if not sizes:
        raise ValueError("A contact sheet needs at least one shot.")
    columns = math.ceil(math.sqrt(len(sizes)))
    rows = math.ceil(len(sizes) / columns)
    scaled = [_fit(w, h, cell_size) for w, h in sizes]
    return SheetLayout(columns, rows, max(w for w, _ in scaled), max(h for _, h in scaled))


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    longest = max(width, height)
    scale = (
        min(1.0, box / longest) if longest >= MIN_CELL_SIZE else min(box, MIN_CELL_SIZE) / longest
    )
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_contact_sheet(
    shots: list[tuple[Image.Image, str]], cell_size: int = CELL_SIZE
) -> Image.Image:
    """One RGB image of `shots` (image, caption) in a grid, each captioned below."""
    layout = sheet_layout([image.size for image, _ in shots], cell_size)
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, (image, caption) in enumerate(shots):
        x, y = layout.origin(index)
        size = _fit(*image.size, cell_size)
        # Enlarged shots keep crisp pixels (NEAREST); reduced ones are filtered (LANCZOS).
        enlarged = size[0] > image.width
        resample = Image.Resampling.NEAREST if enlarged else Image.Resampling.LANCZOS
        thumb = image.convert("RGB").resize(size, resample)
        # centred in its cell
        sheet.paste(
            thumb,
            (
                x + (layout.cell_width - thumb.width) // 2,
                y + (layout.cell_height - thumb.height) // 2,
            ),
        )
        text = _shorten(draw, caption, font, layout.cell_width)
        draw.text((x + 2, y + layout.cell_height + 3), text, fill=CAPTION_COLOUR, font=font)
    return sheet


def save_contact_sheet(path: Path, shots: list[tuple[Path, str]]) -> Path:
    """The contact sheet of the PNG files `shots` (file, caption), saved as `path`."""
    cells = []
    for file, caption in shots:
        with Image.open(file) as image:
            cells.append((image.copy(), caption))
    make_contact_sheet(cells).save(path, format="PNG")
    return path


def _shorten(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """`text`, cut with "…" to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width - 4:
        return text
    while text and draw.textlength(text + "…", font=font) > width - 4:
        text = text[:-1]
    return text + "…"


def cost_summary(
    device_seconds: list[float],
    gpu_price_per_hour: float = GPU_PRICE_PER_HOUR,
    studio_price_per_photo: float = STUDIO_PRICE_PER_PHOTO,
) -> dict[str, Any]:
    """Device seconds per shot turned into money, set against a studio's price per photo."""
    count = len(device_seconds)
    per_image_s = sum(device_seconds) / count if count else 0.0
    cost = per_image_s / 3600.0 * gpu_price_per_hour
    return {
        "currency": "GBP",
        "device_seconds_total": round(sum(device_seconds), 3),
        "device_seconds_per_image": round(per_image_s, 3),
        "gpu_price_per_hour": gpu_price_per_hour,
        "cost_per_image": round(cost, 6),
        "studio_price_per_photo": studio_price_per_photo,
        # How many shots cost what one studio photo does.
        "images_per_studio_photo": round(studio_price_per_photo / cost) if cost > 0 else None,
    }


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """Write `shoot.json`."""
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
