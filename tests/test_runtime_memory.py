"""`return_freed_memory_to_os`: large tensors are mmapped, so freeing them returns the memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, sys, torch
from packshot.runtime import return_freed_memory_to_os
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
layer = [torch.ones(2**20 + i) for i in range(16)]  # 64 MB of 4 MB "activations"
print((libc.mallinfo2().hblkhd - before) / 2**20)  # MB of them that are mmapped
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_activations_go_back_to_the_os() -> None:
    def mmapped(mode: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
        )
        return float(out.stdout.split()[-1])

    # mmapped blocks go back to the OS the moment they are freed; heap blocks stay resident
    default, fixed = mmapped("default"), mmapped("fixed")
    assert fixed >= 64, f"only {fixed:.0f} of 64 MB of activations were mmapped"
    assert default < 1, "glibc's dynamic threshold should have sent them to the heap"
