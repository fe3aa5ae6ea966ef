"""The API's typed settings, read once from the environment by `packshot serve`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from packshot.errors import UsageError
from packshot.jobs.settings import ServiceSettings, env_number
from packshot.models.families import TRAINING_MODEL
from packshot.models.names import is_model_name

MIB = 1024 * 1024


def _env_models() -> tuple[str, ...]:
    """PACKSHOT_MODELS: Hub ids or built-in aliases, comma-separated (a folder is refused:
    merchants name models, and a folder is the operator's, never theirs)."""
    names = tuple(n.strip() for n in os.environ.get("PACKSHOT_MODELS", "").split(",") if n.strip())
    wrong = [n for n in names if not is_model_name(n)]
    if wrong:
        raise UsageError(
            f"PACKSHOT_MODELS names {', '.join(wrong)}, which is not a Hugging Face Hub id "
            f"(owner/name) or a built-in alias: list Hub ids such as {TRAINING_MODEL}."
        )
    return names


@dataclass(frozen=True)
class ApiSettings:
    """Limits and switches of the web API. Every one has an environment variable (README)."""

    service: ServiceSettings
    max_file_mb: float = 25.0  # one uploaded photo (PACKSHOT_MAX_FILE_MB)
    max_request_mb: float = 200.0  # one upload request, all files (PACKSHOT_MAX_REQUEST_MB)
    max_photos: int = 100  # photos per product (PACKSHOT_MAX_PHOTOS)
    max_megapixels: float = 50.0  # intake's pixel limit (PACKSHOT_MAX_MEGAPIXELS)
    rate_limit: int = 600  # requests per minute per key (PACKSHOT_RATE_LIMIT)
    # Session cookies marked Secure (HTTPS only). Off by default because the default bind is
    # loopback over plain HTTP; turn on behind TLS (PACKSHOT_SECURE_COOKIES=1).
    secure_cookies: bool = False
    session_hours: float = 12.0
    # The base and inpainting models merchants may use, Hub ids or built-in aliases
    # (PACKSHOT_MODELS, comma-separated); empty: any Hub id or alias. Never a folder.
    models: tuple[str, ...] = field(default=())
    max_json_kb: float = 256.0  # a JSON request body (PACKSHOT_MAX_JSON_KB); the biggest is ~30 KB
    # Fair use: a merchant's jobs waiting in the queue (PACKSHOT_MAX_QUEUED_JOBS), and the
    # images one shoot or placement renders, candidates included (PACKSHOT_MAX_IMAGES_PER_JOB).
    max_queued_jobs: int = 10
    max_images_per_job: int = 200
    # The pixels of one upload request, all files (PACKSHOT_MAX_UPLOAD_MEGAPIXELS): judging
    # takes ~0.15 s a megapixel of the one intake process every merchant shares.
    max_upload_megapixels: float = 400.0
    # Open event streams (GET …/events), counted across every web process: per merchant
    # (PACKSHOT_MAX_STREAMS_PER_MERCHANT) and in all (PACKSHOT_MAX_STREAMS).
    max_streams_per_merchant: int = 20
    max_streams: int = 2000

    @classmethod
    def from_env(cls, service: ServiceSettings) -> ApiSettings:
        return cls(
            service=service,
            max_file_mb=env_number("PACKSHOT_MAX_FILE_MB", cls.max_file_mb),
            max_request_mb=env_number("PACKSHOT_MAX_REQUEST_MB", cls.max_request_mb),
            max_photos=int(env_number("PACKSHOT_MAX_PHOTOS", cls.max_photos)),
            max_megapixels=env_number("PACKSHOT_MAX_MEGAPIXELS", cls.max_megapixels),
            rate_limit=int(env_number("PACKSHOT_RATE_LIMIT", cls.rate_limit)),
            secure_cookies=os.environ.get("PACKSHOT_SECURE_COOKIES", "") == "1",
            models=_env_models(),
            max_json_kb=env_number("PACKSHOT_MAX_JSON_KB", cls.max_json_kb),
            max_queued_jobs=int(env_number("PACKSHOT_MAX_QUEUED_JOBS", cls.max_queued_jobs)),
            max_images_per_job=int(
                env_number("PACKSHOT_MAX_IMAGES_PER_JOB", cls.max_images_per_job)
            ),
            max_upload_megapixels=env_number(
                "PACKSHOT_MAX_UPLOAD_MEGAPIXELS", cls.max_upload_megapixels
            ),
            max_streams_per_merchant=int(
                env_number("PACKSHOT_MAX_STREAMS_PER_MERCHANT", cls.max_streams_per_merchant)
            ),
            max_streams=int(env_number("PACKSHOT_MAX_STREAMS", cls.max_streams)),
        )

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MIB)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * MIB)

    @property
    def max_json_bytes(self) -> int:
        return int(self.max_json_kb * 1024)
