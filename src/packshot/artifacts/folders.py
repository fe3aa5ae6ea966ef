"""An output folder and the work folder of the run that fills it: what may be started where.

A run (a training, a job run from the CLI on Ray) works in a folder beside its output and moves
its result into place when done; what stays in the work folder after a crash is what `resume`
continues. One policy for every such run: an output folder that holds something is replaced
only with `force`; an interrupted run is continued with `resume` or thrown away with `force`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from packshot.errors import UsageError


def claim_work_dir(out_dir: Path, work: Path, *, resume: bool, force: bool, what: str) -> None:
    """Check `out_dir` and `work` (the folder of an interrupted `what`, "training run") before a
    run starts; with `force` an interrupted run's folder is removed. `work` is not created."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise UsageError(
            f"{out_dir} already exists. Choose another output folder, or pass --force "
            "(force=True) to replace it."
        )
    if work.exists() and not resume:
        if not force:
            raise UsageError(
                f"An interrupted {what} is in {work}. Pass --resume (resume=True) to continue "
                "it, or --force (force=True) to start over."
            )
        shutil.rmtree(work)
