"""Build a folder into packshot's cache atomically: a half-built folder is never used."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from packshot.config import ENV_CACHE
from packshot.errors import PackshotError


def build_into_cache(
    final: Path,
    build: Callable[[Path], object],
    is_current: Callable[[Path], bool],
    what: str,
) -> Path:
    """`final`, built by `build(folder)` on first use (or when `is_current(final)` is False).

    It is built in a temporary folder beside `final`, then renamed into place, so a build that
    dies half-way leaves only a `.<name>.building-*` folder, which is never used. `what` names
    the thing for the error message ("the built-in model `tiny`").
    """
    if is_current(final):
        return final

    # 1. Build beside the final place (same file system, so the rename is atomic).
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=parent))
    except OSError as error:
        raise PackshotError(
            f"Can't write {what} into {parent} ({error.strerror or error}). "
            f"Set {ENV_CACHE} to a folder you can write to."
        ) from error
    try:
        build(building)

        # 2. Move an outdated or broken copy aside: a rename can't replace a non-empty folder.
        if final.exists():
            old = parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                final.rename(old)
            shutil.rmtree(old, ignore_errors=True)

        # 3. Swap in. Another process may have finished first: then its copy is as good.
        try:
            building.rename(final)
        except OSError:
            if not is_current(final):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final
