"""What a merchant reads when their job fails, and what goes to the operator's log instead.

A `PackshotError` says what to do to whoever runs packshot. In the studio that is two
people: the merchant, who can fix their request, and the operator, who can fix the machine.
A `SetupError` (the Hub unreachable and the model not cached, a gated licence) is the
operator's: the merchant is told the studio can't do it now, the log gets the fix. Any other
message goes to the merchant without the server's paths in it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from packshot.errors import PackshotError, SetupError

# An absolute path of two parts or more, not part of a URL or a word (`https://a/b`, `a/b`).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:/[^\s/'\"`(),;:]+){2,}/?")


def setup_message(kind: str) -> str:
    """What the merchant reads when the machine, not their request, stopped their job."""
    return (
        f"The studio can't run this {kind} right now: its operator has been told. Try again "
        "later; nothing you sent needs to change."
    )


def hide_paths(text: str, roots: Sequence[Path]) -> str:
    """`text` without the server's absolute paths: inside one of `roots` (the job's folder,
    the data folder, the working directory), relative to it; anywhere else, the last part."""
    for root in sorted({str(Path(r)) for r in roots}, key=len, reverse=True):
        if root != "/":
            text = text.replace(root + "/", "").replace(root, ".")
    return _ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def merchant_message(kind: str, error: PackshotError, roots: Sequence[Path]) -> str:
    """The failed job's message for its merchant (one line)."""
    if isinstance(error, SetupError):
        return setup_message(kind)
    return hide_paths(" ".join(str(error).split()), roots)
