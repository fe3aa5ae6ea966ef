"""A report per product: an HTML page and a PNG contact sheet of every shot, best first.

The page is self-contained (thumbnails are inlined as small JPEGs) and links each thumbnail
to the full shot by a relative path, so the folder can be zipped or served as it is.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from packshot.judge.presence import PRODUCT_MISSING
from packshot.judge.score import ScoreReport, ShotScore, rank_key

REPORT_DIR = "report"  # default: a sub-folder of the shots folder, which scoring skips
HTML_NAME = "index.html"
SHEET_NAME = "contact-sheet.png"
THUMB = 192  # px, long side of a contact-sheet tile and of the page's inlined thumbnails
_CAPTION_LINES = 4
_LINE = 14  # px per caption line (Pillow's default font at size 11)
_PAD = 8
_COLUMNS = 6


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    contact_sheet: Path


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ordered(report: ScoreReport) -> list[ShotScore]:
    step = report.config_object.rank_step
    return sorted(report.shots, key=lambda s: rank_key(s, step))


def _open_thumb(report: ScoreReport, shot: ShotScore) -> Image.Image | None:
    if not shot.readable:
        return None
    try:
        with Image.open(Path(report.shots_dir) / shot.file) as image:
            image = image.convert("RGB")
            # Fit the tile both ways: a 64 px shot of a tiny model is enlarged too.
            scale = THUMB / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            return image.resize(size, Image.Resampling.LANCZOS)
    except Exception:  # the shot changed or vanished since it was scored: show a blank tile
        return None


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=11)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def contact_sheet(report: ScoreReport, path: str | os.PathLike[str]) -> Path:
    """A PNG grid of every shot, best first, each with its rank, scores and flags."""
    shots = _ordered(report)
    columns = max(1, min(_COLUMNS, len(shots)))
    rows = max(1, math.ceil(len(shots) / columns))
    tile_w, tile_h = THUMB + 2 * _PAD, THUMB + _CAPTION_LINES * _LINE + 2 * _PAD
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h), "white")
    draw, font = ImageDraw.Draw(sheet), _font()
    for rank, shot in enumerate(shots, start=1):
        x = ((rank - 1) % columns) * tile_w + _PAD
        y = ((rank - 1) // columns) * tile_h + _PAD
        thumb = _open_thumb(report, shot)
        if thumb is None:
            draw.rectangle([x, y, x + THUMB - 1, y + THUMB - 1], fill=(220, 220, 220))
            draw.text((x + 6, y + THUMB // 2 - 6), "can't be read", fill="black", font=font)
        else:
            sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        missing = PRODUCT_MISSING in shot.flags or not shot.readable
        if missing:  # a red frame: this shot may not show the product
            draw.rectangle([x - 3, y - 3, x + THUMB + 2, y + THUMB + 2], outline="red", width=3)
        lines = [
            f"#{rank} {shot.file}"[:32],
            f"DINO {_fmt(shot.dino)}  CLIP-I {_fmt(shot.clip_i)}",
            f"CLIP-T {_fmt(shot.clip_t)}  {'present' if shot.present else 'MISSING'}",
            ", ".join(f for f in shot.flags if f != PRODUCT_MISSING)[:32],
        ]
        for i, line in enumerate(lines):
            colour = "red" if (i == 2 and missing) else "black"
            draw.text((x, y + THUMB + 4 + i * _LINE), line, fill=colour, font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;
text-align:left}.grid{display:flex;flex-wrap:wrap;gap:16px}.shot{width:200px;font-size:13px}
.shot img{max-width:192px;max-height:192px;border:3px solid transparent}
.missing img,.missing .blank{border-color:#d00}.blank{width:186px;height:186px;background:#ddd;
display:flex;align-items:center;justify-content:center}.flag{color:#d00;font-weight:600}
.warn{background:#fff4d6;padding:6px 10px;margin:4px 0}
"""


def write_html(report: ScoreReport, path: str | os.PathLike[str]) -> Path:
    """A self-contained HTML page: means, warnings, then every shot best first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    means, real = report.means, report.real_images
    share = means.get("present_share")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Shots of {esc(Path(report.reference_dir).name)}: scores</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{len(report.shots)} shots scored against {len(report.references)} "
        "product photos</h1>",
        f"<p>Shots: <code>{esc(report.shots_dir)}</code><br>Product photos: "
        f"<code>{esc(report.reference_dir)}</code><br>Judges: DINO "
        f"<code>{esc(str(report.judges.get('dino_model')))}</code>, CLIP "
        f"<code>{esc(str(report.judges.get('clip_model')))}</code>; product present at DINO ≥ "
        f"{report.config.get('present_threshold')}</p>",
        "<table><tr><th></th><th>DINO</th><th>CLIP-I</th><th>CLIP-T</th><th>present</th></tr>",
        f"<tr><td>these shots (mean)</td><td>{_fmt(means.get('dino'))}</td>"
        f"<td>{_fmt(means.get('clip_i'))}</td><td>{_fmt(means.get('clip_t'))}</td>"
        f"<td>{'–' if share is None else f'{share:.0%}'}</td></tr>",
        f"<tr><td>product photos vs each other</td><td>{_fmt(real.get('dino'))}</td>"
        f"<td>{_fmt(real.get('clip_i'))}</td><td>–</td><td></td></tr></table>",
    ]
    parts += [f"<div class='warn'>{esc(w)}</div>" for w in report.warnings]
    parts.append("<h2>Best first</h2><div class='grid'>")
    out_dir = path.parent.resolve()
    for rank, shot in enumerate(_ordered(report), start=1):
        missing = PRODUCT_MISSING in shot.flags or not shot.readable
        thumb = _open_thumb(report, shot)
        href = Path(os.path.relpath(Path(report.shots_dir) / shot.file, out_dir)).as_posix()
        if thumb is None:
            picture = "<div class='blank'>can't be read</div>"
        else:
            picture = (
                f"<a href='{esc(href)}'><img src='{_data_uri(thumb)}' alt='{esc(shot.file)}'></a>"
            )
        flags = ", ".join(shot.flags)
        parts.append(
            f"<div class='shot{' missing' if missing else ''}'>{picture}"
            f"<div><b>#{rank}</b> {esc(shot.file)}</div>"
            f"<div>DINO {_fmt(shot.dino)} · CLIP-I {_fmt(shot.clip_i)} · "
            f"CLIP-T {_fmt(shot.clip_t)}</div>"
            + (f"<div class='flag'>{esc(flags)}</div>" if flags else "")
            + (f"<div>{esc(shot.error)}</div>" if shot.error else "")
            + (f"<div><i>{esc(shot.prompt)}</i></div>" if shot.prompt else "")
            + "</div>"
        )
    parts.append("</div></body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def write_report(report: ScoreReport, out_dir: str | os.PathLike[str] | None = None) -> ReportFiles:
    """Write `index.html` and `contact-sheet.png` into `out_dir` (default: `report/` inside
    the shots folder; scoring skips sub-folders, so it is never scored as a shot)."""
    folder = Path(out_dir) if out_dir is not None else Path(report.shots_dir) / REPORT_DIR
    return ReportFiles(
        html=write_html(report, folder / HTML_NAME),
        contact_sheet=contact_sheet(report, folder / SHEET_NAME),
    )
