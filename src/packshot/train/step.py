"""One training step: a UNet (and text encoders) with LoRA adapters, the optimizer and the loss.

Adapted from diffusers examples/dreambooth/train_dreambooth_lora.py and
train_dreambooth_lora_sdxl.py (the loss, min-SNR weighting, prior preservation, SDXL
conditioning). `train` runs it in a loop; `benchmarks/train_step.py` times it alone.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.activations import GEGLU
from diffusers.models.attention import FeedForward
from diffusers.optimization import get_scheduler

from packshot.config import default_cache_dir
from packshot.errors import PackshotError
from packshot.models.families import CropGeometry, ModelFamily
from packshot.models.speed import compile_blocks, decompile, is_compile_error, use_compile_cache
from packshot.train.config import TrainConfig
from packshot.train.data import EncodedSet
from packshot.train.lora_io import add_lora, load_lora_state_dict, lora_config, lora_state_dict


@dataclass
class Batch:
    """The inputs of one step, on the training device; every example of one aspect bucket."""

    latents: torch.Tensor  # (B, C, h, w)
    loss_weights: torch.Tensor  # (B, 1, h, w)
    sample_weights: torch.Tensor  # (B,)
    num_instance: int  # product examples in the batch; class examples come after them
    prompt_embeds: torch.Tensor | None  # (B, 77, D), None when text encoders are trained
    pooled_prompt_embeds: torch.Tensor | None  # (B, P), SDXL
    input_ids: list[torch.Tensor]  # per text encoder, (B, 77)
    # The family's extra conditioning; SDXL: (B, 6) original size, crop corner, target size.
    time_ids: torch.Tensor | None


def make_batch(
    sets: Sequence[tuple[EncodedSet, torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    family: ModelFamily,
) -> Batch:
    """Stack rows of the encoded sets: (set, example indices, flip flags) in batch order. The
    rows must share one size (a batch draws from one bucket)."""
    latents, weights, sample_w, embeds, pooled = [], [], [], [], []
    crops: list[CropGeometry] = []
    ids: list[list[torch.Tensor]] = []
    for encoded, indices, flips in sets:
        rows = (indices + flips.long() * encoded.num_examples).tolist()  # flips after the n
        shapes = {tuple(encoded.latents[r].shape) for r in rows}
        if len(shapes) > 1 or (latents and tuple(latents[0].shape[1:]) not in shapes):
            sizes = sorted({encoded.size_of(i) for i in indices.tolist()})
            raise ValueError(f"A batch draws from one aspect bucket; these rows are of {sizes}.")
        latents.append(_stack([encoded.latents[r] for r in rows]))
        weights.append(_stack([encoded.loss_weights[r] for r in rows]))
        crops += [encoded.crops[r] for r in rows]
        sample_w.append(encoded.sample_weights[indices])
        if encoded.prompt_embeds is not None:
            embeds.append(encoded.prompt_embeds[indices])
        if encoded.pooled_prompt_embeds is not None:
            pooled.append(encoded.pooled_prompt_embeds[indices])
        ids.append([t[indices] for t in encoded.input_ids])
    time_ids = family.micro_conditioning(crops)
    if time_ids is not None:
        time_ids = time_ids.to(device, dtype=torch.float32)
    return Batch(
        latents=torch.cat(latents).to(device),
        loss_weights=torch.cat(weights).to(device),
        sample_weights=torch.cat(sample_w).to(device),
        num_instance=int(sets[0][1].shape[0]),
        prompt_embeds=torch.cat(embeds).to(device) if embeds else None,
        pooled_prompt_embeds=torch.cat(pooled).to(device) if pooled else None,
        input_ids=[torch.cat(parts) for parts in zip(*ids, strict=True)],
        time_ids=time_ids,
    )


def _stack(rows: list[torch.Tensor]) -> torch.Tensor:
    """(C, h, w) rows into a (B, C, h, w) batch in the memory layout the encoder gave them:
    channels-last where a VAE's convolutions made it so, which the denoiser's convolutions
    then read (another layout takes other kernels, and other float sums)."""
    batch = torch.stack(rows)
    first = rows[0]
    if not first.is_contiguous() and first[None].is_contiguous(memory_format=torch.channels_last):
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


class _FrozenConv2d(torch.autograd.Function):
    """conv2d with a frozen weight: saves only the weight for backward, not the input.

    Autograd's own conv2d keeps every conv's input alive until the backward pass even when
    the weight needs no gradient; with the base UNet frozen (LoRA trains only the attention
    projections) only the gradient with respect to the input is ever needed, and that needs
    the weight alone. Same result, same FLOPs, less activation memory (~10% of a step's).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.conv = (x.shape, stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (weight,) = ctx.saved_tensors
        shape, stride, padding, dilation, groups = ctx.conv
        grad_input = torch.nn.grad.conv2d_input(
            shape, weight, grad_output, stride, padding, dilation, groups
        )
        return grad_input, None, None, None, None, None, None


def _frozen_conv_forward(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if conv.weight.requires_grad or not torch.is_grad_enabled():
        return torch.nn.Conv2d.forward(conv, x)
    return _FrozenConv2d.apply(
        x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
    )


def save_memory_on_frozen_convs(model: torch.nn.Module) -> int:
    """Route `model`'s plain zero-padded Conv2d layers through `_FrozenConv2d`; return how many."""
    count = 0
    for module in model.modules():
        if (
            type(module) is torch.nn.Conv2d
            and module.padding_mode == "zeros"
            and isinstance(module.padding, tuple)
        ):
            module.forward = functools.partial(_frozen_conv_forward, module)  # type: ignore[method-assign]
            count += 1
    return count


class _GegluGate(torch.autograd.Function):
    """`a * gelu(g)` for `a, g = h.chunk(2, -1)`, keeping only `h` for the backward pass.

    Autograd's own version keeps `h` (through the views `a` and `g`) and also `gelu(g)`, half
    of `h` again; recomputing `gelu(g)` in the backward pass costs one elementwise op and
    frees that half: ~190 MB of a 512 px SD 1.5 step's 1.36 GB of activations.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h)
        a, g = h.chunk(2, dim=-1)
        return a * F.gelu(g)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (h,) = ctx.saved_tensors
        a, g = h.chunk(2, dim=-1)
        grad_a = grad_output * F.gelu(g)
        grad_g = torch.ops.aten.gelu_backward(grad_output * a, g)
        return torch.cat([grad_a, grad_g], dim=-1)


def _geglu_forward(
    module: torch.nn.Module, hidden_states: torch.Tensor, *args: Any, **kwargs: Any
) -> torch.Tensor:
    h = module.proj(hidden_states)
    if not torch.is_grad_enabled() or not h.requires_grad:
        a, g = h.chunk(2, dim=-1)
        return a * F.gelu(g)
    return _GegluGate.apply(h)


def save_memory_on_geglu(model: torch.nn.Module) -> int:
    """Route `model`'s diffusers GEGLU feed-forward gates through `_GegluGate`; return how many."""

    count = 0
    for module in model.modules():
        if type(module) is GEGLU:
            module.forward = functools.partial(_geglu_forward, module)  # type: ignore[method-assign]
            count += 1
    return count


class _FrozenGegluFeedForward(torch.autograd.Function):
    """diffusers' GEGLU feed-forward, `out(a * gelu(g))` for `a, g = proj(x).chunk(2, -1)`,
    with both projections frozen, keeping only `x` for the backward pass.

    Even through `_GegluGate`, the feed-forward keeps `proj(x)`: tokens × 2 × 4 × width, eight
    times its input. The backward pass recomputes it instead (one matmul, ~3.4 GMAC in every
    SD 1.5 block), and only where there are `min_tokens` or more (the 64² and 32² blocks),
    where it frees the most per FLOP: ~260 MB of a 512 px SD 1.5 step, for ~0.6 s of its ~21 s
    on a 2-core CPU. That memory is what lets the CPU step keep glibc's own allocator (see
    `packshot.models.device.return_freed_memory_to_os`) and so run at the bare UNet's speed.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        proj_weight: torch.Tensor,
        proj_bias: torch.Tensor | None,
        out_weight: torch.Tensor,
        out_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, proj_weight, proj_bias, out_weight)
        ctx.autocast = _autocast_state(x)
        a, g = F.linear(x, proj_weight, proj_bias).chunk(2, dim=-1)
        return F.linear(a * F.gelu(g), out_weight, out_bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # The forward ran under the step's autocast (bf16 matrix products on an fp32 input);
        # the backward pass runs outside it, so it enters the same autocast again: without it
        # the recomputed projection would multiply the fp32 input by the bf16 weight.
        x, proj_weight, proj_bias, out_weight = ctx.saved_tensors
        with _autocast_like(ctx.autocast):
            a, g = F.linear(x, proj_weight, proj_bias).chunk(2, dim=-1)
            grad_gated = grad_output @ out_weight
            grad_h = torch.cat(
                [grad_gated * F.gelu(g), torch.ops.aten.gelu_backward(grad_gated * a, g)], dim=-1
            )
            grad_x = grad_h @ proj_weight
        return grad_x.to(x.dtype), None, None, None, None


def _autocast_state(x: torch.Tensor) -> tuple[str, torch.dtype] | None:
    """The autocast in effect for `x`'s device now: (device type, dtype), or None."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return device, torch.get_autocast_dtype(device)
    return None


def _autocast_like(state: tuple[str, torch.dtype] | None) -> Any:
    """Enter the autocast `_autocast_state` recorded (nothing for None)."""
    return nullcontext() if state is None else torch.autocast(state[0], dtype=state[1])


def _is_plain_geglu_feed_forward(module: torch.nn.Module) -> bool:
    """Whether `_FrozenGegluFeedForward` computes what `module.forward` does, given frozen
    weights: GEGLU, plain (not LoRA-wrapped) linears, a zero dropout, no final dropout."""

    net = list(getattr(module, "net", ()))
    return (
        len(net) == 3
        and type(net[0]) is GEGLU
        and type(net[0].proj) is torch.nn.Linear
        and type(net[1]) is torch.nn.Dropout
        and net[1].p == 0
        and type(net[2]) is torch.nn.Linear
    )


def _feed_forward(
    module: torch.nn.Module,
    min_tokens: int,
    original: Any,
    hidden_states: torch.Tensor,
    *args: Any,
    **kwargs: Any,
) -> torch.Tensor:
    proj, out = module.net[0].proj, module.net[2]
    weights = (proj.weight, proj.bias, out.weight, out.bias)
    if (
        not torch.is_grad_enabled()
        or not hidden_states.requires_grad
        or hidden_states.shape[-2] < min_tokens
        or args
        or kwargs
        or any(w is not None and w.requires_grad for w in weights)  # trained since: its own
    ):
        return original(hidden_states, *args, **kwargs)
    return _FrozenGegluFeedForward.apply(hidden_states, *weights)


def save_memory_on_feed_forward(model: torch.nn.Module, min_tokens: int = 1024) -> int:
    """Route `model`'s diffusers GEGLU FeedForward blocks through `_FrozenGegluFeedForward`
    when they see `min_tokens` tokens or more (checked at each call, falling back to the
    module's own forward otherwise); return how many were routed."""

    count = 0
    for module in model.modules():
        if (
            type(module) is FeedForward
            and _is_plain_geglu_feed_forward(module)
            and not any(p.requires_grad for p in module.parameters())
        ):
            original = module.forward
            module.forward = functools.partial(_feed_forward, module, min_tokens, original)  # type: ignore[method-assign]
            count += 1
    return count


class NonFiniteLoss(Exception):
    """The loss of a step was NaN or inf; the step was not applied."""


class LoraTrainer:
    """A UNet (and optionally text encoders) with LoRA adapters, its optimizer and its loss."""

    def __init__(
        self,
        unet: torch.nn.Module,
        noise_scheduler: Any,
        config: TrainConfig,
        family: ModelFamily,
        *,
        text_encoders: Sequence[torch.nn.Module] = (),
        device: torch.device | str = "cpu",
        weight_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.unet = unet
        self.noise_scheduler = noise_scheduler
        self.config = config
        self.text_encoders = list(text_encoders)  # only the ones being trained
        self.device = torch.device(device)
        self.weight_dtype = weight_dtype
        self.family = family

        # 1. Freeze the base weights; add the LoRA adapters (trainable, in fp32 even when the
        #    base is fp16/bf16: Adam updates of ~1e-4 × lr vanish in half precision).
        #    The adapters' random init comes from the run's seed, not the caller's RNG state.
        cuda_devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(config.seed)
            unet.requires_grad_(False)
            add_lora(unet, lora_config(config.rank, family.denoiser_lora_targets))
            for encoder in self.text_encoders:
                encoder.requires_grad_(False)
                add_lora(encoder, lora_config(config.rank, family.text_encoder_lora_targets))
        for model in self.models:
            for param in model.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
            model.train()

        # 2. Memory: frozen convolutions keep no input for the backward pass (see
        #    `_FrozenConv2d`), feed-forward gates recompute their GELU (`_GegluGate`); gradient
        #    checkpointing recomputes activations in the backward pass instead of keeping them
        #    (~30% slower, a fraction of the activation memory).
        #    Compiled blocks leave what to keep and what to recompute to the compiler (its
        #    min-cut partitioner), so the hand-written savers inside them are left out.
        save_memory_on_frozen_convs(unet)
        if not config.compile:
            save_memory_on_geglu(unet)
            save_memory_on_feed_forward(unet)
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            for encoder in self.text_encoders:
                encoder.gradient_checkpointing_enable()

        # 3. Optimizer: AdamW, 8-bit where bitsandbytes and CUDA are both present.
        groups = [{"params": self._trainable(unet), "lr": config.learning_rate}]
        for encoder in self.text_encoders:
            lr = config.text_encoder_lr or config.learning_rate
            groups.append({"params": self._trainable(encoder), "lr": lr})
        optimizer_class: Any = torch.optim.AdamW
        # CUDA: one fused kernel for the whole update instead of a few per tensor (a batch-1
        # step on an H200 is bound by kernel launches, not by arithmetic)
        extra: dict[str, Any] = {"fused": True} if self.device.type == "cuda" else {}
        self.uses_8bit_adam = False
        if config.use_8bit_adam and self.device.type == "cuda":
            try:
                import bitsandbytes as bnb

                optimizer_class = bnb.optim.AdamW8bit
                self.uses_8bit_adam = True
                extra = {}
            except ImportError:
                pass
        self.optimizer = optimizer_class(
            groups,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.adam_weight_decay,
            eps=config.adam_epsilon,
            **extra,
        )

        # 4. Learning-rate warm-up and schedule.

        self.lr_scheduler = get_scheduler(
            config.lr_scheduler,
            optimizer=self.optimizer,
            num_warmup_steps=config.lr_warmup_steps,
            num_training_steps=config.max_train_steps,
        )

        # 5. Mixed precision on CUDA: autocast, and loss scaling for fp16's narrow range.
        #    Steps take one shape per aspect bucket (a handful), so cuDNN may time its
        #    convolution algorithms once per shape and keep the fastest; channels-last weights
        #    spare cuDNN a layout conversion before and after every convolution (22% of a bf16
        #    SD 1.5 step's GPU time on an H200).
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            unet.to(memory_format=torch.channels_last)
        # 6. Regional compilation of the denoiser's repeated blocks, kept on disk for next time;
        #    a compile that fails puts them back to eager at the first step (see `train_step`).
        self.compiled: list[torch.nn.Module] = []
        self.notes: list[str] = []
        if config.compile:
            use_compile_cache(default_cache_dir())
            try:
                self.compiled = compile_blocks(unet, fullgraph=False)
            except Exception as error:  # an unknown backend, a torch without compile: eager
                self.notes.append(f"torch.compile is off ({type(error).__name__}: {error})")
        self.autocast_dtype = weight_dtype if weight_dtype != torch.float32 else None
        self.grad_scaler = None
        if self.device.type == "cuda" and weight_dtype == torch.float16:
            self.grad_scaler = torch.amp.GradScaler("cuda")

    @property
    def models(self) -> list[torch.nn.Module]:
        return [self.unet, *self.text_encoders]

    @staticmethod
    def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for m in self.models for p in self._trainable(m)]

    def _autocast(self) -> Any:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def draw_noise(
        self, batch: Batch, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise (with offset noise) and timesteps for `batch`, from a CPU generator."""
        b, c = batch.latents.shape[:2]
        noise = torch.randn(batch.latents.shape, generator=generator)
        if self.config.noise_offset:
            # one random shift of each channel's mean: lets the model learn overall brightness
            noise += self.config.noise_offset * torch.randn((b, c, 1, 1), generator=generator)
        timesteps = self.family.draw_timesteps(self.noise_scheduler, b, generator)
        return noise.to(self.device), timesteps.to(self.device)

    def compute_loss(
        self, batch: Batch, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """The masked, min-SNR-weighted diffusion loss of `batch` at the given noise."""
        # 1. The family's objective: the denoiser's input at the sampled timesteps, and what
        #    it must predict (SD: the noise or the velocity, per the scheduler config).
        family = self.family
        noisy, target = family.noisy_and_target(
            self.noise_scheduler, batch.latents, noise, timesteps
        )

        # 2. Text conditioning: cached, or computed now when the text encoders learn.
        embeds, pooled = batch.prompt_embeds, batch.pooled_prompt_embeds
        with self._autocast():
            if self.text_encoders:
                embeds, pooled = family.encode_prompt(self.text_encoders, batch.input_ids)

            # 3. The denoiser's prediction.
            pred = family.predict(
                self.unet,
                noisy.to(self.weight_dtype),
                timesteps,
                embeds.to(self.weight_dtype),
                pooled,
                batch.time_ids,
            )

        # 4. Masked MSE: a weighted mean per example, the product counting fully and the
        #    background by `background_weight`.
        squared = (pred.float() - target.float()) ** 2 * batch.loss_weights  # (B, 4, h, w)
        norm = batch.loss_weights.sum(dim=(1, 2, 3)) * squared.shape[1]
        per_example = squared.sum(dim=(1, 2, 3)) / norm  # (B,)

        # 5. min-SNR-γ (for diffusion families): down-weight the easy low-noise timesteps.
        if self.config.snr_gamma is not None:
            weight = family.loss_weights(self.noise_scheduler, timesteps, self.config.snr_gamma)
            per_example = per_example * weight

        # 6. Prior preservation: class examples weigh prior_loss_weight; as in diffusers the
        #    two halves are averaged separately and added.
        return (per_example * batch.sample_weights).sum() / batch.num_instance

    def train_step(
        self, batch: Batch, generator: torch.Generator, *, inject_nan: bool = False
    ) -> float:
        """One optimisation step; raises NonFiniteLoss (and changes nothing) on a NaN/inf loss."""
        noise, timesteps = self.draw_noise(batch, generator)
        try:
            loss = self._loss_and_gradients(batch, noise, timesteps, inject_nan)
        except Exception as error:
            if not (self.compiled and is_compile_error(error)):
                raise
            # torch.compile failed (an unsupported op, a kernel that won't build): eager from
            # now on, and this step again with the same noise.
            decompile(self.compiled)
            self.compiled = []
            self.notes.append(f"torch.compile failed ({type(error).__name__}); training eager")
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss_and_gradients(batch, noise, timesteps, inject_nan)
        torch.nn.utils.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _loss_and_gradients(
        self, batch: Batch, noise: torch.Tensor, timesteps: torch.Tensor, inject_nan: bool
    ) -> torch.Tensor:
        """The loss at `noise` and `timesteps`, its gradients in the adapters (unless NaN/inf)."""
        loss = self.compute_loss(batch, noise, timesteps)
        if inject_nan:
            loss = loss * float("nan")  # the debug hook: a real NaN through the real check
        if not torch.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(float(loss.detach()))
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        return loss

    @torch.no_grad()
    def probe_loss(self, batch: Batch, seed: int = 1234) -> float:
        """The loss of `batch` at fixed noise and timesteps: comparable before and after."""
        generator = torch.Generator("cpu").manual_seed(seed)
        noise, timesteps = self.draw_noise(batch, generator)
        return float(self.compute_loss(batch, noise, timesteps))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def scale_lr(self, factor: float) -> None:
        """Scale the learning rate of every group from now on (the schedule keeps its shape)."""
        self.lr_scheduler.base_lrs = [lr * factor for lr in self.lr_scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor

    @property
    def named_models(self) -> dict[str, torch.nn.Module]:
        """The models with adapters by their model_index.json names ("unet", "text_encoder"…)."""
        names = self.family.text_encoder_names
        return {
            self.family.denoiser: self.unet,
            **dict(zip(names, self.text_encoders, strict=False)),
        }

    def lora_states(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: lora_state_dict(model) for name, model in self.named_models.items()}

    def load_lora_states(self, states: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, model in self.named_models.items():
            try:
                load_lora_state_dict(model, states[name])
            except (KeyError, ValueError) as exc:
                raise PackshotError(f"The checkpoint's LoRA for {name} doesn't fit: {exc}") from exc
