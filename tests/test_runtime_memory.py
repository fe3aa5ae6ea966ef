"""`return_freed_memory_to_os`: large tensors are mmapped, so freeing them returns the memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, sys, torch
from packshot.models.device import return_freed_memory_to_os
if sys.argv[1] == "fixed":
    assert return_freed_memory_to_os()
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
big = torch.ones(6 * 2**20)  # 24 MB (< 32 MB): freeing it raises glibc's dynamic mmap threshold
del big
before = libc.mallinfo2().hblkhd
layer = [torch.ones(3 * 2**20 + i) for i in range(6)]  # 72 MB of 12 MB "activations"
large = (libc.mallinfo2().hblkhd - before) / 2**20  # MB of them that are mmapped
before = libc.mallinfo2().hblkhd
small = [torch.ones(2**20 + i) for i in range(16)]  # 64 MB of 4 MB ones
print(large, (libc.mallinfo2().hblkhd - before) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_activations_go_back_to_the_os() -> None:
    # Both processes at once: each spends its time importing torch.
    runs = {
        mode: subprocess.Popen(
            [sys.executable, "-c", SCRIPT, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("default", "fixed")
    }

    def mmapped(mode: str) -> tuple[float, float]:
        out, err = runs[mode].communicate(timeout=300)
        assert runs[mode].returncode == 0, err
        large, small = out.split()[-2:]
        return float(large), float(small)

    # mmapped blocks go back to the OS the moment they are freed; heap blocks stay resident
    (default, _), (fixed, fixed_small) = mmapped("default"), mmapped("fixed")
    assert fixed >= 72, f"only {fixed:.0f} of 72 MB of large activations were mmapped"
    assert default < 1, "glibc's dynamic threshold should have sent them to the heap"
    # below the 8 MB threshold, tensors reuse heap memory: no fresh zeroed pages each time
    assert fixed_small < 1, f"{fixed_small:.0f} MB of 4 MB activations were mmapped"
