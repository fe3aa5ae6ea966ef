"""Where packshot keeps its files, and the typed settings shared by every layer.

Core functions never read these globals themselves: the CLI and the service resolve them
and pass plain paths down.
"""

from __future__ import annotations

import os
from pathlib import Path

# Environment variables packshot reads (documented in the README, checked by a test).
ENV_CACHE = "PACKSHOT_CACHE"  # where built tiny models and other caches live
ENV_DATA = "PACKSHOT_DATA"  # the studio's data dir (products, photos, jobs)
ENV_DATABASE_URL = "PACKSHOT_DATABASE_URL"  # the studio's database (default: SQLite in data)
ENV_RUNNER = "PACKSHOT_RUNNER"  # what runs the studio's jobs: local (default) or ray
# torch.compile's backend for --compile: inductor (default), or e.g. cudagraphs / aot_eager
ENV_COMPILE_BACKEND = "PACKSHOT_COMPILE_BACKEND"


def default_cache_dir() -> Path:
    """`$PACKSHOT_CACHE`, else `$XDG_CACHE_HOME/packshot`, else `~/.cache/packshot`."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "packshot"


def default_data_dir() -> Path:
    """`$PACKSHOT_DATA`, else `~/.local/share/packshot`."""
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).expanduser()
    return Path.home() / ".local" / "share" / "packshot"
