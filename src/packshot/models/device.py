"""Where models run: the device (`pick_device`), the dtype (`pick_dtype`), and the host allocator.

A light wrapper over torch's own queries, with errors that say what to use instead.
"""

from __future__ import annotations

import ctypes
import sys

import torch

from packshot.errors import UsageError

DEVICES = ("cuda", "mps", "cpu")
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(prefer: str | None = None) -> str:
    """`prefer` if this machine has it, else the best one here: "cuda", then "mps", then "cpu".

    `prefer` is None or "auto" (choose), "cuda", "cuda:N", "mps" or "cpu".
    """
    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"

    base, _, index = prefer.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise UsageError(f"Unknown device `{prefer}`. Choose one of: auto, cuda, cuda:N, mps, cpu.")
    if base == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise UsageError(
                f"Device `{prefer}` was asked for, but torch sees no CUDA GPU here (torch "
                f"{torch.__version__}, {build}). Use `cpu`, or install the CUDA build of torch."
            )
        if index and int(index) >= torch.cuda.device_count():
            raise UsageError(
                f"Device `{prefer}` was asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0."
            )
    if base == "mps" and not _mps_available():
        raise UsageError("Device `mps` was asked for, but Apple's MPS isn't available here.")
    return prefer


def return_freed_memory_to_os(threshold: int = 8 << 20) -> bool:
    """glibc only: serve allocations of `threshold` bytes and more by mmap, from now on.

    glibc's default raises its mmap threshold each time a large block is freed (up to 32 MB),
    after which nearly all of a training step's activations come from the heap, whose freed
    holes keep the process's resident memory above what is live. A fixed threshold sends
    every tensor of that size back to the OS when it is freed, but each new one then costs
    fresh, zero-filled pages. Measured on a 512 px SD 1.5 LoRA step (2-core CPU, packshot's
    step, separate processes): glibc's default 21.3 s and 5.53 GB peak RSS; 8 MB 20.4 s and
    5.45 GB; 1 MB 26.9 s and 4.85 GB (a quarter slower: ~3 million page faults a step). 8 MB
    keeps the common 5 MB activations of the 64² blocks on the heap and returns the larger
    ones. Returns whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, threshold))
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to do
        return False


def pick_dtype(device: str, precision: str | None = None) -> torch.dtype:
    """The torch dtype to run models in on `device`.

    `precision` None or "auto": bf16 on a CUDA GPU that supports it, else fp16; fp16 on MPS;
    fp32 on the CPU. "fp32", "fp16" and "bf16" are honoured where the device can run them.
    """
    on_cuda = device.startswith("cuda")
    if precision is None or precision == "auto":
        if on_cuda:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device == "mps" else torch.float32

    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision `{precision}`. Choose one of: auto, fp32, fp16, bf16.")
    if precision == "fp16" and device == "cpu":
        raise UsageError(
            "Precision fp16 can't run on the CPU: many CPU kernels have no half-precision version. "
            "Use fp32 (or bf16 on a recent CPU), or run on a GPU."
        )
    if precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        raise UsageError(
            f"Precision bf16 was asked for, but this GPU ({torch.cuda.get_device_name(device)}) "
            "doesn't support it. Use fp16."
        )
    return PRECISIONS[precision]
