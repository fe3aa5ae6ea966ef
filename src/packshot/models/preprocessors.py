"""Tokenizers and processors, loaded once per process and shared.

Loading a tokenizer costs far more than its size suggests: transformers parses the vocabulary
and merges in Python (CLIP's 49,408 tokens: 0.26 s a load here, 0.38 s for a CLIP judge's
processor), and a pipeline loads one or two of them every time it loads. A worker or a Serve
replica that switches models, a training that loads its text parts and then a pipeline for its
samples, and the judges of every shoot all load the same few again. They are kept here instead,
keyed by the folder and its files (name, size, modification time: a folder saved again is loaded
again), the last `KEPT` of them.

They are shared, not copied (a copy costs as much as a load): packshot only calls them, and
never adds tokens to one or changes its settings. Whoever needs to change one must load their
own with `from_pretrained`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import transformers

KEPT = 8  # tokenizers and processors kept (a few MB each)

_lock = threading.Lock()
_kept: OrderedDict[tuple[str, str, tuple[tuple[str, int, int], ...]], Any] = OrderedDict()


def _files(folder: Path) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stat = path.stat()
            found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def load_preprocessor(folder: Path, class_name: str) -> Any:
    """`transformers.<class_name>.from_pretrained(folder)`, once per process for a folder
    whose files have not changed since."""
    folder = folder.resolve()
    key = (str(folder), class_name, _files(folder))
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    loaded = getattr(transformers, class_name).from_pretrained(folder)
    with _lock:
        _kept[key] = loaded
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return loaded


def pipeline_tokenizers(model_dir: Path) -> dict[str, Any]:
    """The tokenizers a diffusers folder's `model_index.json` names, by component name, for
    the pipeline's `from_pretrained(model_dir, **them)`: the same classes from the same
    subfolders that diffusers would load, from `load_preprocessor`. A component whose class
    transformers doesn't have under that name is left to diffusers."""
    index = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
    tokenizers = {}
    for name, spec in index.items():
        if not (isinstance(spec, list) and len(spec) == 2 and spec[0] == "transformers"):
            continue
        class_name = spec[1]
        if not (isinstance(class_name, str) and "Tokenizer" in class_name):
            continue
        if (model_dir / name).is_dir() and hasattr(transformers, class_name):
            tokenizers[name] = load_preprocessor(model_dir / name, class_name)
    return tokenizers
