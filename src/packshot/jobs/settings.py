"""The service's typed settings: where its data lives, which database, which runner.

Read once from the environment (and `--data`) by `packshot serve` and the worker, then passed
down as a plain object; nothing below reads the environment itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from packshot.config import (
    ENV_CACHE,
    ENV_DATA,
    ENV_DATABASE_URL,
    ENV_RUNNER,
    default_cache_dir,
    default_data_dir,
)
from packshot.errors import UsageError

DATABASE_FILE = "packshot.db"  # the SQLite database, in the data dir
# Webhooks may go to loopback/private addresses (local development; off by default: SSRF).
ENV_WEBHOOK_ALLOW_PRIVATE = "PACKSHOT_WEBHOOK_ALLOW_PRIVATE"
ENV_MAX_RUNNING_JOBS = "PACKSHOT_MAX_RUNNING_JOBS"


def env_flag(name: str) -> bool:
    """An on/off environment variable: 1 is on; unset, empty or 0 is off; anything else is
    an error rather than a guess."""
    raw = os.environ.get(name, "").strip()
    if raw in ("", "0"):
        return False
    if raw == "1":
        return True
    raise UsageError(f"{name} must be 1 (on) or 0 (off), got {raw!r}.")


def _env_count(name: str) -> int | None:
    """A whole number of at least 1 from the environment; unset or empty: None."""
    value = env_number(name, 0.0) or None
    if value is not None and value != int(value):
        raise UsageError(f"{name} must be a whole number, got {os.environ[name]!r}.")
    return None if value is None else int(value)


def env_number(name: str, default: float) -> float:
    """A positive number from the environment; unset or empty: `default`."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}.") from None
    if value <= 0:
        raise UsageError(f"{name} must be positive, got {raw!r}.")
    return value


@dataclass(frozen=True)
class ServiceSettings:
    data_dir: Path
    database_url: str
    runner: str = "local"
    cache_dir: Path | None = None
    webhook_allow_private: bool = False  # PACKSHOT_WEBHOOK_ALLOW_PRIVATE=1
    # Fair use of the workers: the most jobs of one merchant running at once
    # (PACKSHOT_MAX_RUNNING_JOBS); None: no cap beyond the fair order (`store.next_in_line`),
    # so a worker never idles while only one merchant waits. Over the cap, jobs wait queued.
    max_running_jobs: int | None = None

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> ServiceSettings:
        """`--data`, else PACKSHOT_DATA, else the default; the database and runner likewise."""
        data = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        url = os.environ.get(ENV_DATABASE_URL) or f"sqlite:///{data.resolve() / DATABASE_FILE}"
        if url.startswith(("postgres://", "postgresql://")):
            # SQLAlchemy's default PostgreSQL driver is psycopg2; packshot ships psycopg 3.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        runner = os.environ.get(ENV_RUNNER, "local").strip() or "local"
        if runner not in ("local", "ray"):
            raise UsageError(f"{ENV_RUNNER} must be local or ray, got {runner!r}.")
        return cls(
            data_dir=data,
            database_url=url,
            runner=runner,
            cache_dir=default_cache_dir(),
            webhook_allow_private=env_flag(ENV_WEBHOOK_ALLOW_PRIVATE),
            max_running_jobs=_env_count(ENV_MAX_RUNNING_JOBS),
        )

    def environ(self) -> dict[str, str]:
        """The environment a worker process needs to see the same settings."""
        env = {ENV_DATA: str(self.data_dir), ENV_DATABASE_URL: self.database_url}
        if self.cache_dir is not None:
            env[ENV_CACHE] = str(self.cache_dir)
        if self.max_running_jobs is not None:
            env[ENV_MAX_RUNNING_JOBS] = str(self.max_running_jobs)
        return env
