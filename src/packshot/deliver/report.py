"""A delivery's report: `delivery.json` read back, and the HTML page: every shot against every
profile, its status, what was fixed, and each failed rule with its reason and the marketplace's
page. Self-contained (thumbnails are inlined) and linking the delivered files by relative paths,
so the folder can be zipped. Light: the API reads deliveries through it."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from packshot.errors import UsageError

DELIVERY_DIR = "delivery"  # a run's delivery, in its output folder (the studio's exports read it)
REPORT_FILE = "delivery.json"
HTML_FILE = "report.html"
PASS, FIXED, WARN, FAIL = "pass", "fixed", "warn", "fail"  # a shot's status for a profile
THUMB = 160  # px, long side of an inlined thumbnail
COLOURS = {"pass": "#1a7f37", "fixed": "#0969da", "warn": "#9a6700", "fail": "#cf222e"}
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2328}
table{border-collapse:collapse;width:100%}td,th{border-top:1px solid #d0d7de;padding:.5rem;
vertical-align:top;text-align:left}img{max-width:160px;height:auto}
.badge{display:inline-block;color:#fff;border-radius:1em;padding:0 .6em;font-size:.85em}
ul{margin:.2rem 0;padding-left:1.1rem}small{color:#59636e}
"""


def _thumb(path: Path) -> str:
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = THUMB / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            buffer = io.BytesIO()
            image.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=80)
    except OSError:
        return ""
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="" src="data:image/jpeg;base64,{data}">'


def _cell(result: dict[str, Any]) -> str:
    e = html.escape
    colour = COLOURS[result["status"]]
    parts = [f'<span class="badge" style="background:{colour}">{e(result["status"])}</span>']
    if result.get("file"):
        parts.append(f' <a href="{e(result["file"])}">{e(Path(result["file"]).name)}</a>')
    items = [f"<li>fixed: {e(fix)}</li>" for fix in result["fixes"]]
    for kind, entries in (("fails", result["problems"]), ("warning", result["warnings"])):
        items += [
            f"<li>{kind}: {e(p['rule'])}: {e(p['reason'])} "
            f'<a href="{e(p["source"])}">(rule)</a></li>'
            for p in entries
        ]
    items += [f"<li><small>check by hand: {e(i)}</small></li>" for i in result["check_by_hand"]]
    return "".join(parts) + (f"<ul>{''.join(items)}</ul>" if items else "")


def write_html(report: dict[str, Any], out_dir: Path) -> Path:
    """Write the page of the delivery `report` (as in delivery.json) into `out_dir`."""
    e = html.escape
    profiles = report["profiles"]
    head = "".join(f'<th><a href="{e(p["source"])}">{e(p["label"])}</a></th>' for p in profiles)
    rows = []
    for image in report["images"]:
        results = image["results"]
        first = next((r["file"] for r in results.values() if r.get("file")), None)
        thumb = _thumb(out_dir / first) if first else _thumb(Path(image["source"]))
        who = f"<b>{e(image['title'])}</b><br><small>{e(Path(image['source']).name)}"
        who += f" · {e(image['origin'])}" + (f" · {e(image['slot'])}" if image["slot"] else "")
        cells = "".join(f"<td>{_cell(results[p['name']])}</td>" for p in profiles)
        rows.append(f"<tr><td>{thumb}</td><td>{who}</small></td>{cells}</tr>")
    summary = "; ".join(
        f"{e(p['label'])}: "
        + ", ".join(f"{n} {s}" for s, n in report["counts"].get(p["name"], {}).items() if n)
        for p in profiles
    )
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>packshot delivery</title><style>{STYLE}</style>"
        f"<h1>Delivery</h1><p>{summary}</p>"
        f"<table><tr><th></th><th>shot</th>{head}</tr>{''.join(rows)}</table></html>\n"
    )
    path = out_dir / HTML_FILE
    path.write_text(page, encoding="utf-8")
    return path


def read_report(delivery_dir: Path) -> dict[str, Any]:
    """The `delivery.json` of a delivery folder, or a UsageError saying what to run."""
    path = Path(delivery_dir) / REPORT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{delivery_dir} is not a delivery (no readable {REPORT_FILE}): run "
            "`packshot deliver SHOTS --profile … --out DIR` first."
        ) from error
    if not isinstance(data, dict) or data.get("kind") != "packshot-delivery":
        raise UsageError(f"{path} is not a packshot delivery report.")
    return data
