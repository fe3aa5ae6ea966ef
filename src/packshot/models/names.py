"""What a model reference is: a built-in stand-in alias, a Hugging Face Hub id, or (outside
the studio's jobs) a folder of this machine. Light: the API checks merchants' names with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from packshot.models.families import stand_in_aliases

# owner/name, as the Hub spells repository ids: each part 1-96 letters, digits, `-`, `_`, `.`,
# starting and ending with a letter or digit, with no `--` or `..`. So a Hub id is never `.`,
# `..`, a hidden name or an absolute path, and names no folder by itself.
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
HUB_ID = re.compile(rf"^(?!.*(?:--|\.\.)){_HUB_PART}/{_HUB_PART}$")

# False while a studio job runs: its models were named by a merchant (`hub_models_only`).
_folders_allowed: ContextVar[bool] = ContextVar("packshot_model_folders", default=True)


def is_model_name(ref: str) -> bool:
    """A model's name, not a path: a built-in stand-in alias or a Hub id. The only models a
    merchant may name (the API's `model` fields, PACKSHOT_MODELS)."""
    return ref in stand_in_aliases() or HUB_ID.match(ref) is not None


@contextmanager
def hub_models_only() -> Iterator[None]:
    """Within it, a model reference is a name (`is_model_name`), never a folder of this
    machine: `resolve_model` doesn't look for one. The studio runs its jobs so, because a
    merchant names their models, and a relative name that happens to be a server folder
    (`data/products`) must not load it or tell the merchant it is there."""
    token = _folders_allowed.set(False)
    try:
        yield
    finally:
        _folders_allowed.reset(token)


def folders_allowed() -> bool:
    """Whether a model reference may be a local folder here (see `hub_models_only`)."""
    return _folders_allowed.get()
