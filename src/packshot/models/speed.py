"""How a pipeline runs as fast as its device allows: LoRAs merged into the weights, fused
attention projections, channels-last convolutions, regional `torch.compile` (cached on disk
across runs) and, as an option, fp8 weights (torchao).

Attention stays on PyTorch's own SDPA backend order: on an H200, putting cuDNN's fused
attention first gained 1% on SDXL at 1024 px and lost 8% on SD 1.5 at 512 px (eager, batch
1, `benchmarks/gpu_throughput.py`), so there is no attention lever here.

Every lever is optional and falls back cleanly, with a note that says why: fp8 off on a card
without fp8 tensor cores or without torchao, compile undone when it fails. `load_pipeline` makes
a pipeline fast once (and never hands it to an eager caller); `render.configured` sets its LoRAs
through `use_loras`, and `render.timed_call` calls it through `call`. Training compiles through
`compile_blocks`.

A fast pipeline keeps the LoRAs of the shoot it served merged into its weights, so the next
shoot of the same product starts at once; another product's LoRAs first put back the base
weights (kept on the host), then merge. Compiled code is reused across both (the weights are
changed in place, not replaced), except with fp8, whose quantised weights are new tensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from diffusers import DiffusionPipeline
from peft.tuners.tuners_utils import BaseTunerLayer
from torch._inductor.runtime.cache_dir_utils import default_cache_dir as torch_inductor_default

from packshot.config import ENV_COMPILE_BACKEND

T = TypeVar("T")

# Where torch.compile's kernels and graphs are kept between runs, under packshot's cache
# folder unless the operator set TORCHINDUCTOR_CACHE_DIR: a warm worker, or the next run on
# the same machine, compiles from this cache in seconds instead of minutes.
COMPILE_CACHE_FOLDER = "torch-compile"
INDUCTOR_CACHE_SETTING = "TORCHINDUCTOR_CACHE_DIR"
# torch.compile's backend: "inductor" (generated kernels: the fast one); an operator may name
# another ("cudagraphs", or "aot_eager" to trace without generating code) in
# PACKSHOT_COMPILE_BACKEND.
DEFAULT_COMPILE_BACKEND = "inductor"
# fp8 pays on layers large enough for its scaling to vanish beside the product (SD's attention
# and feed-forward projections are 320-5120 wide; the time embedding's are not worth it).
FP8_MIN_FEATURES = 512
# fp8 matrix products need tensor cores of compute capability 8.9 (Ada) or 9.0 (Hopper) and up.
FP8_MIN_CAPABILITY = (8, 9)
_STATE = "_packshot_speed"


@dataclass(frozen=True)
class Speedups:
    """The levers a merchant or operator asks for (`--compile`, `--fp8`).

    Both imply the fused form: LoRAs merged into the weights, fused QKV projections,
    channels-last. Without either, a pipeline is exactly the one diffusers loads (eager).
    """

    compile: bool = False  # regional torch.compile of the denoiser's repeated blocks
    fp8: bool = False  # fp8 weights and activations in the denoiser's linear layers (torchao)

    @property
    def active(self) -> bool:
        return self.compile or self.fp8

    @property
    def label(self) -> str:
        """ "eager", "fused", "compiled", "compiled+fp8" or "fp8": what the recipe records."""
        if not self.active:
            return "eager"
        return "+".join(name for name, on in (("compiled", self.compile), ("fp8", self.fp8)) if on)

    def to_dict(self) -> dict[str, bool]:
        return {"compile": self.compile, "fp8": self.fp8}


EAGER = Speedups()


@dataclass
class _State:
    """What `make_fast` did to a pipeline, and which LoRAs are merged into it now."""

    asked: Speedups
    device: str
    denoiser: str  # the pipeline's part that denoises: "unet", "transformer"
    notes: list[str] = field(default_factory=list)  # what was switched off, and why
    applied: list[str] = field(default_factory=list)  # the levers in effect
    compiled: list[torch.nn.Module] = field(default_factory=list)
    fp8: bool = False
    # The base weights of every layer a merge or fp8 changed, on the host: (module, tensor).
    base_weights: dict[int, tuple[torch.nn.Module, torch.Tensor]] = field(default_factory=dict)
    loras: Hashable = ()  # the LoRAs merged now (their key); () for none


def _state(pipe: DiffusionPipeline) -> _State | None:
    return getattr(pipe, _STATE, None)


def speed_notes(pipe: DiffusionPipeline) -> list[str]:
    """Why a lever asked for is off on this pipeline (empty for an eager one)."""
    state = _state(pipe)
    return list(state.notes) if state else []


def applied(pipe: DiffusionPipeline) -> list[str]:
    """The levers in effect on `pipe` ("eager" alone for a plain pipeline)."""
    state = _state(pipe)
    return list(state.applied) if state else ["eager"]


def fp8_unavailable(device: str) -> str | None:
    """Why fp8 can't run on `device` here, or None when it can."""
    if not device.startswith("cuda"):
        return "fp8 needs an NVIDIA GPU (compute capability 8.9 or newer); this is the CPU"
    capability = torch.cuda.get_device_capability(torch.device(device))
    if capability < FP8_MIN_CAPABILITY:
        name = torch.cuda.get_device_name(torch.device(device))
        return (
            f"fp8 needs compute capability 8.9 or newer (Ada, Hopper, Blackwell); the "
            f"{name} has {capability[0]}.{capability[1]}"
        )
    try:
        import torchao.quantization  # noqa: F401
    except ImportError:
        return "fp8 needs torchao (`pip install torchao`), which isn't installed here"
    return None


def use_compile_cache(cache_dir: Path) -> Path:
    """Keep torch.compile's artifacts under `cache_dir`, unless the operator's
    TORCHINDUCTOR_CACHE_DIR names another folder than torch's default (which importing
    diffusers already writes into the environment)."""
    given = os.environ.get(INDUCTOR_CACHE_SETTING)
    if given is None or os.path.abspath(given) == os.path.abspath(torch_inductor_default()):
        os.environ[INDUCTOR_CACHE_SETTING] = str(cache_dir / COMPILE_CACHE_FOLDER)
    folder = Path(os.environ[INDUCTOR_CACHE_SETTING])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def compile_backend() -> str:
    """The torch.compile backend: PACKSHOT_COMPILE_BACKEND, else inductor."""
    return os.environ.get(ENV_COMPILE_BACKEND, "").strip() or DEFAULT_COMPILE_BACKEND


def compile_blocks(
    model: torch.nn.Module, *, fullgraph: bool, backend: str | None = None
) -> list[torch.nn.Module]:
    """Compile each of `model`'s repeated blocks (diffusers' `_repeated_blocks`) in place:
    regional compilation, one compiled graph per distinct block shape instead of one for the
    whole model, so compiling takes seconds, not minutes. Returns the blocks compiled."""
    names = set(getattr(model, "_repeated_blocks", ()) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    for block in blocks:
        block.compile(fullgraph=fullgraph, dynamic=False, backend=backend or compile_backend())
    return blocks


def decompile(blocks: Sequence[torch.nn.Module]) -> None:
    """Undo `compile_blocks`: the blocks run their eager forward again."""
    for block in blocks:
        block._compiled_call_impl = None


def is_compile_error(error: BaseException) -> bool:
    """Whether `error` came from torch.compile (tracing, lowering, a kernel that won't build)."""
    return isinstance(error, torch._dynamo.exc.TorchDynamoException)


def _brief(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def _has_convs(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def make_fast(
    pipe: DiffusionPipeline,
    denoiser: str,
    speedups: Speedups,
    *,
    device: str,
    cache_dir: Path,
) -> list[str]:
    """Apply `speedups` to a freshly loaded `pipe` (its denoiser part is called `denoiser`),
    once; returns the notes on what had to stay off."""
    state = _State(speedups, device, denoiser)
    model = getattr(pipe, denoiser)

    # 1. Channels-last convolutions: cuDNN's fast kernels want NHWC; spares a layout
    #    conversion around every convolution of the UNet and the VAE.
    if device.startswith("cuda"):
        for part in (model, getattr(pipe, "vae", None)):
            if part is not None and _has_convs(part):
                part.to(memory_format=torch.channels_last)
        state.applied.append("channels-last")

    # 2. One projection for query, key and value (key and value for cross-attention): one
    #    larger matrix product instead of three, where the model offers it (UNets, the VAE).
    fused = []
    for part in (model, getattr(pipe, "vae", None)):
        if part is not None and hasattr(part, "fuse_qkv_projections"):
            try:
                part.fuse_qkv_projections()
                fused.append(type(part).__name__)
            except (ValueError, AttributeError, NotImplementedError) as error:
                state.notes.append(f"fused QKV projections are off ({_brief(error)})")
    if fused:
        state.applied.append("fused-qkv")
    state.applied.append("merged-loras")

    # 3. fp8: where the card and torchao allow it; the base weights are kept to quantise
    #    again after each merge (a quantised weight can't take a LoRA merge).
    if speedups.fp8:
        reason = fp8_unavailable(device)
        if reason:
            state.notes.append(f"{reason}: rendering in {_dtype_name(model)} instead of fp8")
        else:
            state.fp8 = True
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    _keep_base_weight(state, module)
            _quantize_fp8(model)
            state.applied.append("fp8")

    # 4. Regional compilation, cached on disk.
    if speedups.compile:
        use_compile_cache(cache_dir)
        try:
            state.compiled = compile_blocks(model, fullgraph=True)
        except Exception as error:  # an unknown backend, a torch without compile: eager
            state.notes.append(f"torch.compile is off ({_brief(error)}): rendering without it")
        else:
            if state.compiled:
                state.applied.append("compiled")
            else:
                state.notes.append(
                    f"torch.compile is off: this {type(model).__name__} names no repeated blocks"
                )
    setattr(pipe, _STATE, state)
    return list(state.notes)


def _dtype_name(model: torch.nn.Module) -> str:
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def _quantize_fp8(model: torch.nn.Module) -> None:
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        PerRow,
        quantize_,
    )

    def worth_it(module: torch.nn.Module, _name: str) -> bool:
        # small layers (the time embedding, LoRA-sized ones) lose more to scaling than they gain
        return (
            isinstance(module, torch.nn.Linear)
            and module.in_features >= FP8_MIN_FEATURES
            and module.out_features >= FP8_MIN_FEATURES
        )

    quantize_(model, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()), worth_it)


def _keep_base_weight(state: _State, module: torch.nn.Module) -> None:
    """Keep `module`'s weight (and bias) on the host the first time it is about to change."""
    if id(module) not in state.base_weights:
        state.base_weights[id(module)] = (module, module.weight.detach().to("cpu", copy=True))


def _restore_base_weights(state: _State) -> None:
    """Put back every changed weight: in place where it is still a plain tensor (compiled code
    stays valid), as a new parameter where fp8 replaced it."""
    for module, base in state.base_weights.values():
        weight = module.weight
        plain = type(weight) is torch.nn.Parameter and type(weight.data) is torch.Tensor
        if plain and weight.dtype == base.dtype and weight.shape == base.shape:
            with torch.no_grad():
                weight.data.copy_(base, non_blocking=False)
        else:
            module.weight = torch.nn.Parameter(base.to(state.device), requires_grad=False)


# The fused projections diffusers builds (`fuse_projections`) and the layers each concatenates.
_FUSED = (
    ("to_qkv", ("to_q", "to_k", "to_v")),
    ("to_kv", ("to_k", "to_v")),  # cross-attention: key and value only
    ("to_added_qkv", ("add_q_proj", "add_k_proj", "add_v_proj")),  # joint attention's text side
)


def _refresh_fused_projections(model: torch.nn.Module) -> None:
    """Copy the (merged or restored) query, key and value weights into the fused projections
    of every attention module of `model` that diffusers fused (UNets' and transformers')."""
    with torch.no_grad():
        for module in model.modules():
            if not getattr(module, "fused_projections", False):
                continue
            for fused_name, part_names in _FUSED:
                fused = getattr(module, fused_name, None)
                parts = [getattr(module, name, None) for name in part_names]
                if fused is None or any(part is None for part in parts):
                    continue
                weight = torch.cat([part.weight for part in parts])
                if type(fused.weight.data) is not torch.Tensor:  # fp8: quantised again after
                    fused.weight = torch.nn.Parameter(weight, requires_grad=False)
                else:
                    fused.weight.data.copy_(weight)
                if fused.bias is not None:
                    fused.bias.data.copy_(torch.cat([part.bias for part in parts]))


def is_fast(pipe: DiffusionPipeline) -> bool:
    """Whether `make_fast` prepared `pipe` (its LoRAs go through `use_loras`)."""
    return _state(pipe) is not None


def use_loras(pipe: DiffusionPipeline, key: Hashable, load: Callable[[], None]) -> None:
    """Have the LoRAs identified by `key` merged into fast `pipe`'s weights; `load` loads them
    as adapters at their scales (as the eager path does). Nothing to do when they already are."""
    state = _state(pipe)
    if state is None:
        raise RuntimeError("use_loras() is for pipelines that make_fast() prepared")
    if state.loras == key:
        return
    denoiser = state.denoiser
    model = getattr(pipe, denoiser)

    # 1. Back to the base weights (the previous product's LoRAs out).
    _restore_base_weights(state)
    state.loras = ()

    # 2. The new LoRAs as adapters, their layers' base weights kept, then merged and unloaded.
    if key:
        try:
            load()
            with_loras = [
                name
                for name in getattr(pipe, "_lora_loadable_modules", [denoiser])
                if getattr(pipe, name, None) is not None
                and any(isinstance(m, BaseTunerLayer) for m in getattr(pipe, name).modules())
            ]
            for name in with_loras:
                for module in getattr(pipe, name).modules():
                    if isinstance(module, BaseTunerLayer):
                        _keep_base_weight(state, module.get_base_layer())
            pipe.fuse_lora(components=with_loras)
        except BaseException:
            _restore_base_weights(state)  # a LoRA that doesn't fit: the base model, as it was
            raise
        finally:
            pipe.unload_lora_weights()
    for part in (model, getattr(pipe, "vae", None)):
        if part is not None:
            _refresh_fused_projections(part)

    # 3. fp8: quantise the merged weights.
    if state.fp8:
        _quantize_fp8(model)
    state.loras = key


def call(pipe: DiffusionPipeline, run: Callable[[], T], generators: Sequence[Any] = ()) -> T:
    """`run()`, a call of `pipe`; if compiling fails (once, on a fast pipeline), the blocks go
    back to eager with a note and `run` is tried again with `generators` re-seeded, so the
    images are the ones the seeds promise."""
    state = _state(pipe)
    if state is None:
        return run()
    try:
        return run()
    except Exception as error:
        if not (state.compiled and is_compile_error(error)):
            raise
        decompile(state.compiled)
        state.compiled = []
        state.applied.remove("compiled")
        state.notes.append(f"torch.compile failed ({_brief(error)}): rendering without it")
        for generator in generators:
            generator.manual_seed(generator.initial_seed())
        return run()
