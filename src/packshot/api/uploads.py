"""Multipart uploads read as a stream, with the size limits enforced while bytes arrive.

FastAPI's `UploadFile` would spool a whole request to disk before any check; here a request
over `max_request` bytes, or one file over `max_file`, is refused (413) as soon as it goes
over, and file names are kept only as labels (never used as paths).
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

from fastapi import Request
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException

from packshot.api.errors import ApiError

MAX_FILES = 100  # files in one request


def clean_name(raw: str | None) -> str:
    """A file name fit to show: its last component, no control characters, at most 120 chars."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:120] or "upload"


def unique(name: str, seen: set[str]) -> str:
    """Repeated names get " (2)", " (3)"…, as intake names them."""
    candidate, n = name, 1
    while candidate in seen:
        n += 1
        stem, dot, suffix = name.rpartition(".")
        candidate = f"{stem} ({n}).{suffix}" if dot and stem else f"{name} ({n})"
    seen.add(candidate)
    return candidate


async def read_files(request: Request, max_file: int, max_request: int) -> list[tuple[str, bytes]]:
    """The uploaded files as (display name, bytes), in the order they were sent."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "Upload photos as multipart/form-data with one `files` part per photo.",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_request:
        raise ApiError(
            413, f"The upload is over the limit of {max_request // 2**20} MiB a request."
        )

    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    part: dict = {}
    header: dict = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        part.clear()
        part.update(headers={}, chunks=[], size=0)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][header["field"].decode("latin-1").lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part["headers"].get("content-disposition", b""))
        filename = disposition.get(b"filename")
        part["file"] = filename is not None
        part["name"] = clean_name(filename.decode("utf-8", "replace") if filename else None)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not part.get("file"):
            return  # form fields other than files are ignored
        part["size"] += end - start
        if part["size"] > max_file:
            raise ApiError(
                413,
                f"{part['name']} is over the limit of {max_file / 2**20:g} MiB a photo; "
                "send a smaller export of it.",
            )
        part["chunks"].append(bytes(data[start:end]))

    def on_part_end() -> None:
        if part.get("file"):
            if len(files) >= MAX_FILES:
                raise ApiError(413, f"At most {MAX_FILES} files in one upload.")
            files.append((unique(part["name"], seen), b"".join(part["chunks"])))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_request:
                raise ApiError(
                    413, f"The upload is over the limit of {max_request // 2**20} MiB a request."
                )
            parser.write(chunk)
        parser.finalize()
    except (ApiError, HTTPException):  # ours, and the body limit's 413 (`api.limits`)
        raise
    except Exception as exc:  # python-multipart's parse errors
        raise ApiError(400, f"The multipart body can't be read: {exc}.") from None
    if not files:
        raise ApiError(422, "No files in the upload: send one `files` part per photo.")
    return files


def megapixels(data: bytes) -> float:
    """The pixels of an image file, in millions, from its header (nothing is decoded); 0 when
    it can't be read as an image (intake rejects it, having decoded nothing either)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:  # over Pillow's own limit: at least that many
        return 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    except Exception:  # not an image, or one Pillow can't read: intake says so, per file
        return 0.0
    return width * height / 1e6


def check_pixel_budget(files: list[tuple[str, bytes]], budget: float) -> None:
    """Refuse (413) an upload whose photos have more than `budget` megapixels in all: judging
    costs time per pixel in the one intake process every merchant shares."""
    total = sum(megapixels(data) for _name, data in files)
    if total > budget:
        raise ApiError(
            413,
            f"The photos of this upload have {total:.0f} megapixels in all, over the limit of "
            f"{budget:g} per upload: send them in several uploads, or as smaller exports.",
        )
