"""The DreamBooth-LoRA training run: photos in, a model folder out, sturdy against kills and NaNs.

Adapted from diffusers examples/dreambooth/train_dreambooth_lora.py and
train_dreambooth_lora_sdxl.py (the run's outline), rewritten around a latent/embedding cache,
atomic checkpoints, resume and a NaN roll-back; the step itself is in `step.py`.
"""

from __future__ import annotations

import copy
import gc
import inspect
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import torch

from packshot import intake
from packshot.artifacts.folders import claim_work_dir
from packshot.artifacts.product_model import (
    CHECKPOINTS_DIR,
    RUN_FILE,
    SAMPLES_DIR,
    TRAINING_SET_DIR,
    ProductModel,
    SourcePhoto,
    work_dir_for,
)
from packshot.config import default_cache_dir
from packshot.errors import PackshotError, PhotoSetError, UsageError
from packshot.intake.prepare import KIND, MANIFEST
from packshot.models.device import pick_device, pick_dtype, return_freed_memory_to_os
from packshot.models.families import ModelFamily, get_family, trainable_families
from packshot.models.load import load_pipeline, resolve_model
from packshot.models.preprocessors import pipeline_tokenizers
from packshot.models.sizes import check_bucket
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.train.card import write_model_card
from packshot.train.checkpoints import (
    latest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from packshot.train.config import TrainConfig
from packshot.train.data import (
    TrainingExample,
    class_images_key,
    encode_examples,
    ensure_class_images,
    epoch_batches,
)
from packshot.train.exports import write_exports
from packshot.train.samples import render_samples
from packshot.train.step import Batch, LoraTrainer, NonFiniteLoss, make_batch


def open_work_dir(
    config: TrainConfig, photos_dir: Path, out_dir: Path, *, resume: bool, force: bool
) -> Path:
    """Check the folders of a run and open its work folder (`work_dir_for(out_dir)`).

    Refuses an existing `out_dir` or interrupted run unless `force`/`resume` say what to do,
    and a resume whose config differs from the interrupted run's; records the run's config
    signature on a fresh start. Returns the work folder.
    """
    work = work_dir_for(out_dir)
    if not photos_dir.is_dir():
        raise UsageError(f"No photo folder at {photos_dir}.")
    claim_work_dir(out_dir, work, resume=resume, force=force, what="training run")
    work.mkdir(parents=True, exist_ok=True)
    run_file = work / RUN_FILE
    signature = config.run_signature()
    if run_file.is_file():
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        # A field added to TrainConfig since the interrupted run started (buckets) was then
        # what its default is now: no change when the resumed run keeps that default.
        defaults = TrainConfig.model_construct(model="", class_word="").run_signature()
        previous = {**{k: defaults[k] for k in signature if k not in previous}, **previous}
        changes = _config_diff(previous, signature)
        if changes:
            raise UsageError(
                f"Can't resume {work}: the config differs from the interrupted run's ("
                + "; ".join(changes)
                + "). Resume with the same settings, or pass force=True without resume."
            )
    else:
        run_file.write_text(json.dumps(signature, indent=2), encoding="utf-8")
    return work


def oom_advice(config: TrainConfig, device: str) -> str:
    """What to change after running out of memory, in concrete settings."""
    smaller = max(256, (config.resolution * 3 // 4) // 64 * 64)
    tips = []
    if config.train_batch_size > 1:
        tips.append(f"train_batch_size 1 (now {config.train_batch_size})")
    if not config.gradient_checkpointing:
        tips.append("gradient_checkpointing on")
    if config.resolution > 256:
        tips.append(f"resolution {smaller} (now {config.resolution})")
    if config.rank > 4:
        tips.append(f"rank {max(4, config.rank // 2)} (now {config.rank})")
    if config.train_text_encoder:
        tips.append("train_text_encoder off")
    if config.with_prior_preservation:
        tips.append("with_prior_preservation off (it doubles the batch)")
    return (
        f"Out of memory on {device} while training at {config.resolution} px, batch size "
        f"{config.train_batch_size}, rank {config.rank}, gradient checkpointing "
        f"{'on' if config.gradient_checkpointing else 'off'}. Try, in this order: "
        + "; ".join(tips)
        + "."
    )


# -- the run ---------------------------------------------------------------------------------


def _ensure_instance_caption(caption: str, config: TrainConfig) -> str:
    """Every caption must name the product by its token and class, or the LoRA binds nothing."""
    caption = caption.strip()
    if f"{config.token} {config.class_word}" in caption:
        return caption
    return f"{config.instance_prompt}, {caption}" if caption else config.instance_prompt


def _prepared_examples(
    photos_dir: Path,
    work: Path,
    config: TrainConfig,
    family: ModelFamily,
    force: bool,
    progress: ProgressCallback,
) -> tuple[list[TrainingExample], list[SourcePhoto]]:
    """The training examples: a prepared set as is, or photos run through intake first (crops
    at the family's aspect buckets, or square with `buckets` off)."""

    def is_training_set(folder: Path) -> bool:
        try:
            return json.loads((folder / MANIFEST).read_text("utf-8")).get("kind") == KIND
        except (OSError, ValueError, AttributeError):
            return False

    set_dir = work / TRAINING_SET_DIR
    if is_training_set(photos_dir) and not is_training_set(set_dir):
        # A copy goes into the model folder: the model then carries the product's own crops,
        # which `packshot shoot` judges its shots against (a few small PNGs).
        tmp = work / f"{TRAINING_SET_DIR}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(photos_dir, tmp)
        os.replace(tmp, set_dir)
        training_set = intake.load_training_set(set_dir)
    elif is_training_set(set_dir):  # prepared by the interrupted run this one resumes
        training_set = intake.load_training_set(set_dir)
    else:
        # 1. Judge the photos; refuse a set that is "not enough" unless forced.
        report = intake.check_photos(photos_dir, progress=progress)
        source: Any = report
        if report.verdict == "not enough":
            if not force:
                raise PhotoSetError(
                    f"The photos in {photos_dir} are not enough to train on. "
                    + " ".join(report.advice)
                    + " Pass force=True (--force) to train on them anyway."
                )
            source = [intake.load_photo(photos_dir / name) for name in report.training_files()]
        # 2. Crops centred on the product at the family's aspect buckets (or square), masks
        #    and captions, into the work folder.
        tmp = work / f"{TRAINING_SET_DIR}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        intake.prepare_training_set(
            source,
            tmp,
            resolution=config.resolution,
            token=config.token,
            class_word=config.class_word,
            buckets=config.buckets,
            size_multiple=family.size_multiple,
            progress=progress,
        )
        os.replace(tmp, set_dir)
        training_set = intake.load_training_set(set_dir)

    # 3. A prepared set must match the run: its crops' size, its captions' token and class.
    if training_set.resolution != config.resolution:
        raise UsageError(
            f"The training set in {photos_dir} was prepared at {training_set.resolution} px, but "
            f"`resolution` is {config.resolution}. Prepare it again at {config.resolution} px, "
            f"or train at {training_set.resolution}."
        )
    if (training_set.token, training_set.class_word) != (config.token, config.class_word):
        raise UsageError(
            f"The training set names the product `{training_set.token} "
            f"{training_set.class_word}`, but the config says `{config.token} "
            f"{config.class_word}`. Use the same token and class word, or prepare it again."
        )
    for item in training_set.items:
        size = (item.size[0], item.size[1])
        problem = check_bucket(size, config.resolution, family.size_multiple)
        if problem is None and not config.buckets and size[0] != size[1]:
            problem = "buckets are off (square crops only)"
        if problem is not None:
            raise UsageError(
                f"The training set's {item.file} is {size[0]}x{size[1]} px, which can't train a "
                f"{family.label} model at {config.resolution} px: {problem}. Prepare it again "
                f"for this run (`packshot photos prepare --resolution {config.resolution} "
                f"--size-multiple {family.size_multiple}`"
                + ("" if config.buckets else " --no-buckets")
                + "), or pass the photos themselves."
            )
    folder = Path(training_set.directory or photos_dir)
    examples = [
        TrainingExample(
            folder / item.file,
            _ensure_instance_caption(item.caption, config),
            folder / item.mask_file,
            size=(item.size[0], item.size[1]),
            photo_size=(item.photo_size[0], item.photo_size[1]) if item.photo_size else None,
            crop_box=(item.crop_box[0], item.crop_box[1], item.crop_box[2], item.crop_box[3]),
        )
        for item in training_set.items
    ]
    hashes = [SourcePhoto(item.source, item.source_sha256) for item in training_set.items]
    if not examples:
        raise PhotoSetError(f"The training set from {photos_dir} has no images.")
    return examples, hashes


def _mixed_precision_dtype(config: TrainConfig, device: str) -> torch.dtype:
    on_cuda = device.startswith("cuda")
    if config.mixed_precision == "no":
        return torch.float32
    if config.mixed_precision == "auto":
        # half precision trains on CUDA only; MPS and CPU train in fp32
        return pick_dtype(device) if on_cuda else torch.float32
    if not on_cuda:
        raise UsageError(
            f"mixed_precision `{config.mixed_precision}` needs a CUDA GPU; on {device} packshot "
            "trains in fp32. Use mixed_precision `auto` or `no`."
        )
    return pick_dtype(device, config.mixed_precision)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    # the CPU allocator raises a plain RuntimeError
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def train(
    config: TrainConfig,
    photos_dir: Path | str,
    out_dir: Path | str,
    *,
    progress: ProgressCallback = no_progress,
    resume: bool = False,
    force: bool = False,
    cache_dir: Path | None = None,
) -> ProductModel:
    """Train a DreamBooth-LoRA of the product in `photos_dir` into `out_dir`; return the model.

    `photos_dir` is a folder of photos (run through intake first) or a training set prepared by
    `packshot photos prepare`. The run writes into `<out_dir>.partial` and renames it to
    `out_dir` only when complete. `resume` continues from the latest complete checkpoint there;
    `force` replaces an existing `out_dir` or interrupted run, and trains on a photo set intake
    judged "not enough". Class images for prior preservation are cached under `cache_dir`.
    """
    timings: dict[str, float] = {}
    photos_dir, out_dir = Path(photos_dir), Path(out_dir)

    # 1. Check the inputs and the folders before loading anything.
    work = open_work_dir(config, photos_dir, out_dir, resume=resume, force=force)

    def emit(done: int, message: str, **data: Any) -> None:
        progress(ProgressEvent("train", done, config.max_train_steps, message, data))

    try:
        return _run(config, photos_dir, out_dir, work, emit, progress, force, cache_dir, timings)
    except BaseException as exc:
        emit(0, "failed", event="failed", error=str(exc))
        # Keep the work folder only when a checkpoint in it can be resumed from.
        if latest_checkpoint(work / CHECKPOINTS_DIR) is None:
            shutil.rmtree(work, ignore_errors=True)
        if _is_oom(exc):
            device = config.device or "this device"
            raise PackshotError(oom_advice(config, device)) from exc
        raise


def _run(
    config: TrainConfig,
    photos_dir: Path,
    out_dir: Path,
    work: Path,
    emit: Any,
    progress: ProgressCallback,
    force: bool,
    cache_dir: Path | None,
    timings: dict[str, float],
) -> ProductModel:
    """The body of `train`, in numbered steps; `train` has checked the folders already."""

    started = clock = time.perf_counter()
    checkpoints_dir, samples_dir = work / CHECKPOINTS_DIR, work / SAMPLES_DIR

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
        clock = now

    # 2. The base model, its family, the device and precision.
    resolved = resolve_model(config.model, cache_dir=cache_dir)
    family = resolved.family
    if not family.trainable:
        raise UsageError(
            f"`{config.model}` is a {resolved.family.label} model; packshot trains LoRAs on "
            "these text-to-image families: "
            + ", ".join(get_family(name).label for name in trainable_families())
            + ". Train on the plain base model instead."
        )
    if config.train_text_encoder and not family.text_encoder_trainable:
        raise UsageError(
            f"packshot trains {family.label} LoRAs on the {family.denoiser} only (its text "
            "encoder stays frozen, as in the diffusers example). Train without "
            "--train-text-encoder."
        )
    multiple = family.size_multiple
    if config.resolution % multiple:
        raise UsageError(
            f"{family.label} models need image sides in multiples of {multiple} px; "
            f"`resolution` is {config.resolution}. Use "
            f"{max(multiple, config.resolution // multiple * multiple)}."
        )
    pipeline_class = getattr(diffusers, family.pipeline_class_name("text2img"))
    device = pick_device(config.device)
    weight_dtype = _mixed_precision_dtype(config, device)
    if device == "cpu":
        return_freed_memory_to_os()  # activations live in host memory: keep its peak down

    # 3. The training examples: intake's crops at their aspect buckets, masks and captions.
    examples, photo_hashes = _prepared_examples(photos_dir, work, config, family, force, progress)
    bucket_sizes = sorted({example.size for example in examples if example.size is not None})
    lap("prepare_s")

    # 4. Prior preservation: class images made by the base model itself, cached by model,
    #    prompt and resolution so that every product of the same class reuses them.
    class_examples: list[TrainingExample] = []
    if config.with_prior_preservation:
        key = class_images_key(
            str(resolved.path),
            config.class_prompt_text,
            config.resolution,
            config.class_inference_steps,
        )
        folder = (cache_dir or default_cache_dir()) / "class-images" / key
        paths = ensure_class_images(
            folder,
            count=config.num_class_images,
            make_pipeline=lambda: load_pipeline(
                config.model, device=device, dtype=weight_dtype, cache_dir=cache_dir
            ),
            prompt=config.class_prompt_text,
            resolution=config.resolution,
            num_inference_steps=config.class_inference_steps,
            progress=progress,
        )
        # Square images, each cut to every bucket the photos train at: a batch's class images
        # share its photos' size.
        class_examples = [
            TrainingExample(p, config.class_prompt_text, None, True, size=size)
            for size in bucket_sizes
            for p in paths
        ]
        lap("class_images_s")

    # 5. Encode every image and caption once, then free the VAE and (unless they are trained)
    #    the text encoders before the UNet is even loaded: the peak is the UNet's alone.
    tokenizers, encoders, vae = family.load_text_parts(resolved.path, weight_dtype)
    vae = vae.to(device)
    text_encoders = [encoder.to(device) for encoder in encoders]
    lap("load_s")
    encode_options: dict[str, Any] = {
        "vae": vae,
        "tokenizers": tokenizers,
        "text_encoders": text_encoders,
        "resolution": config.resolution,
        "random_flip": config.random_flip,
        "background_weight": config.background_weight,
        "prior_loss_weight": config.prior_loss_weight,
        "family": family,
        "encode_text": not config.train_text_encoder,
        "progress": progress,
    }
    instance_set = encode_examples(examples, **encode_options)
    class_set = encode_examples(class_examples, **encode_options) if class_examples else None
    trained_encoders = text_encoders if config.train_text_encoder else []
    del vae, text_encoders, encoders, tokenizers, encode_options
    _free_memory()
    lap("cache_s")

    # 6. The UNet with its LoRA adapters, the optimizer and the learning-rate schedule.
    unet, noise_scheduler = family.load_denoiser(resolved.path, weight_dtype)
    trainer = LoraTrainer(
        unet.to(device),
        noise_scheduler,
        config,
        family,
        text_encoders=trained_encoders,
        device=device,
        weight_dtype=weight_dtype,
    )
    del unet

    # 7. The batch order: every batch from one aspect bucket, a fresh plan of them every epoch
    #    (seeded by the epoch, so it needs no saved state: `epoch_batches`), flips and class
    #    images (of the batch's bucket) from the run's generator.
    batch_size = config.train_batch_size
    buckets = instance_set.buckets
    class_buckets = class_set.buckets if class_set is not None else {}
    steps_per_epoch = len(epoch_batches(buckets, batch_size, config.seed))
    planned: dict[int, list[torch.Tensor]] = {}  # the current epoch's batches
    generator = torch.Generator("cpu").manual_seed(config.seed)

    def next_batch(step: int) -> Batch:
        epoch, position = divmod(step, steps_per_epoch)
        if epoch not in planned:
            planned.clear()
            planned[epoch] = epoch_batches(buckets, batch_size, config.seed + epoch)
        indices = planned[epoch][position]
        flips = torch.zeros(batch_size, dtype=torch.bool)
        if instance_set.has_flips:
            flips = torch.randint(0, 2, (batch_size,), generator=generator).bool()
        sets = [(instance_set, indices, flips)]
        if class_set is not None:
            members = class_buckets[instance_set.size_of(int(indices[0]))]
            picks = torch.randint(0, len(members), (batch_size,), generator=generator)
            class_indices = torch.tensor(members)[picks]
            class_flips = torch.zeros(batch_size, dtype=torch.bool)
            if class_set.has_flips:
                class_flips = torch.randint(0, 2, (batch_size,), generator=generator).bool()
            sets.append((class_set, class_indices, class_flips))
        return make_batch(sets, device, family)

    first = torch.tensor(buckets[instance_set.size_of(0)][:batch_size])
    probe = make_batch(
        [(instance_set, first, torch.zeros_like(first, dtype=torch.bool))], device, family
    )
    # What the buckets were, for packshot.json and the card; samples at the square and at the
    # bucket most photos trained at besides it.
    used_buckets = [
        {"width": w, "height": h, "photos": len(members)} for (w, h), members in buckets.items()
    ]
    other_sizes = sorted(
        (size for size in buckets if size[0] != size[1]), key=lambda size: -len(buckets[size])
    )[:1]

    # 8. Snapshots of the whole training state: checkpoints on disk, and the starting point in
    #    memory (the roll-back target before the first checkpoint exists).
    run: dict[str, Any] = {"step": 0, "loss": float("nan"), "nan_rollbacks": 0}

    def capture() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        # The run's only randomness is its own generator (noise, timesteps, flips; the batch
        # order is seeded by the epoch), so saving it makes a resumed run exact.
        rng: dict[str, Any] = {"generator": generator.get_state()}
        states: dict[str, Any] = {
            "optimizer": trainer.optimizer.state_dict(),
            "lr_scheduler": trainer.lr_scheduler.state_dict(),
            "rng": rng,
        }
        if trainer.grad_scaler is not None:
            states["grad_scaler"] = trainer.grad_scaler.state_dict()
        return trainer.lora_states(), states, dict(run)

    def restore(loras: dict[str, Any], states: dict[str, Any], state: dict[str, Any]) -> None:
        trainer.load_lora_states(loras)
        trainer.optimizer.load_state_dict(states["optimizer"])
        trainer.lr_scheduler.load_state_dict(states["lr_scheduler"])
        generator.set_state(states["rng"]["generator"])
        if trainer.grad_scaler is not None and "grad_scaler" in states:
            trainer.grad_scaler.load_state_dict(states["grad_scaler"])
        run.update({k: state[k] for k in ("step", "loss", "nan_rollbacks") if k in state})
        if "probe_loss_start" in state:
            run["probe_loss_start"] = state["probe_loss_start"]

    initial = copy.deepcopy(capture())
    resumed_from = None
    checkpoint = latest_checkpoint(checkpoints_dir)
    if checkpoint is not None:
        loras = {name: checkpoint.lora(name) for name in trainer.lora_states()}
        restore(
            loras,
            {k: checkpoint.torch_state(k) for k in _torch_state_names(checkpoint.path)},
            checkpoint.state(),
        )
        resumed_from = checkpoint.step
        emit(run["step"], f"resumed from step {resumed_from}", event="resume", step=resumed_from)
    else:
        run["probe_loss_start"] = trainer.probe_loss(probe)
    prune_checkpoints(checkpoints_dir, config.checkpoints_total_limit)  # stale .tmp folders too

    def render(step: int) -> list[Path]:
        """Sample shots with the LoRA as it is now; the VAE and text encoders load just for this."""
        kwargs: dict[str, Any] = {**trainer.named_models, "dtype": weight_dtype}
        kwargs.update(pipeline_tokenizers(resolved.path))  # the ones training loaded
        if "safety_checker" in inspect.signature(pipeline_class.__init__).parameters:
            kwargs.update(safety_checker=None, requires_safety_checker=False)

        pipe = pipeline_class.from_pretrained(resolved.path, **kwargs).to(device)
        pipe.set_progress_bar_config(disable=True)
        for model in trainer.models:
            model.eval()
        try:
            return render_samples(
                pipe,
                prompt=config.validation_prompt or config.instance_prompt,
                seeds=config.validation_seeds,
                resolution=config.resolution,
                num_inference_steps=config.validation_inference_steps,
                samples_dir=samples_dir,
                step=step,
                other_sizes=other_sizes,
            )
        finally:
            for model in trainer.models:
                model.train()
            del pipe
            _free_memory()

    # 9. The training loop.
    lap("setup_s")
    emit(run["step"], "training", event="start", step=run["step"])
    nan_injected, seconds_per_step, samples = 0, None, []
    loss_ema: float | None = None
    while run["step"] < config.max_train_steps:
        step_started = time.perf_counter()
        batch = next_batch(run["step"])
        inject = (
            config.debug_nan_at_step == run["step"] + 1 and nan_injected < config.debug_nan_times
        )
        nan_injected += int(inject)
        try:
            loss = trainer.train_step(batch, generator, inject_nan=inject)
        except NonFiniteLoss as bad:
            # 9a. A NaN/inf loss: nothing was applied. Roll back to the last complete checkpoint
            #     (or the start), lower the learning rate once; a second time, give up.
            failed_at = run["step"] + 1
            if run["nan_rollbacks"] >= 1:
                raise PackshotError(
                    f"The training loss became {bad} at step {failed_at}, again after rolling back "
                    f"and lowering the learning rate to {trainer.lr:.2e}: this run is unstable. "
                    f"Lower learning_rate (now {config.learning_rate:g}) or rank "
                    f"({config.rank}), or use mixed_precision `no`; the photos may also be broken."
                ) from None
            target = latest_checkpoint(checkpoints_dir)
            if target is None:
                restore(*copy.deepcopy(initial))
            else:
                names = _torch_state_names(target.path)
                restore(
                    {name: target.lora(name) for name in trainer.lora_states()},
                    {k: target.torch_state(k) for k in names},
                    target.state(),
                )
            trainer.scale_lr(config.nan_lr_factor)
            run["nan_rollbacks"] += 1
            emit(
                run["step"],
                f"loss {bad} at step {failed_at}: rolled back to step {run['step']}",
                event="rollback",
                step=run["step"],
                failed_step=failed_at,
                lr=trainer.lr,
            )
            continue
        run["step"] += 1
        run["loss"] = loss
        while trainer.notes:  # a lever that had to be switched off (torch.compile failed)
            emit(run["step"], trainer.notes.pop(0), event="warning")
        step = run["step"]
        loss_ema = loss if loss_ema is None else 0.9 * loss_ema + 0.1 * loss
        took = time.perf_counter() - step_started
        seconds_per_step = took if seconds_per_step is None else 0.9 * seconds_per_step + 0.1 * took
        emit(
            step,
            f"loss {loss:.4f}",
            event="step",
            step=step,
            loss=loss,
            loss_ema=loss_ema,
            lr=trainer.lr,
            it_s=1.0 / seconds_per_step if seconds_per_step else None,
            eta_s=seconds_per_step * (config.max_train_steps - step),
        )

        # 9b. Checkpoints: complete ones only, the newest K kept.
        if (
            config.checkpointing_steps
            and step % config.checkpointing_steps == 0
            and step < config.max_train_steps
        ):
            saved = save_checkpoint(checkpoints_dir, step, *capture())
            prune_checkpoints(checkpoints_dir, config.checkpoints_total_limit)
            emit(
                step,
                f"checkpoint at step {step}",
                event="checkpoint",
                step=step,
                path=str(saved.path),
            )

        # 9c. Sample shots every N steps.
        if (
            config.validation_steps
            and step % config.validation_steps == 0
            and step < config.max_train_steps
        ):
            shots = render(step)
            emit(
                step,
                f"samples at step {step}",
                event="sample",
                step=step,
                paths=[str(p) for p in shots],
            )
    lap("train_s")
    probe_end = trainer.probe_loss(probe)

    # 10. The model files: the LoRA in every export format (diffusers, kohya, …), final samples.
    exports = write_exports(work, family, trainer.named_models, config)
    if config.sample_at_end:
        shots = render(run["step"])
        emit(
            run["step"],
            "final samples",
            event="sample",
            step=run["step"],
            paths=[str(p) for p in shots],
        )
    samples = sorted(samples_dir.glob("*.png")) if samples_dir.is_dir() else []
    lap("save_s")
    timings["total_s"] = round(time.perf_counter() - started, 3)

    # 11. packshot.json and the model card, then the folder moves into place in one rename.
    final_samples = [p for p in samples if p.name.startswith(f"step-{run['step']:06d}-")]
    product_model = ProductModel(
        model_dir=work,
        base_model=config.model,
        base_model_source=resolved.source,
        family=family.name,
        token=config.token,
        class_word=config.class_word,
        product=config.product,
        instance_prompt=config.instance_prompt,
        config=config.model_dump(mode="json"),
        photos=photo_hashes,
        device=device,
        dtype=str(weight_dtype).removeprefix("torch."),
        optimizer="AdamW8bit" if trainer.uses_8bit_adam else "AdamW",
        timings=timings,
        final_step=run["step"],
        final_loss=run["loss"],
        resumed_from=resumed_from,
        nan_rollbacks=run["nan_rollbacks"],
        probe_loss={"start": run.get("probe_loss_start"), "end": probe_end},
        buckets=used_buckets,
        samples=[str(p.relative_to(work)) for p in samples],
        exports=exports,
    )
    product_model.save()

    write_model_card(product_model, [str(p.relative_to(work)) for p in final_samples])
    (work / RUN_FILE).unlink(missing_ok=True)
    if out_dir.exists():  # empty, or replaced with force: train() refused anything else
        old = out_dir.parent / f"{out_dir.name}.replaced"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(work, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(work, out_dir)

    emit(run["step"], "done", event="done", step=run["step"], loss=run["loss"], path=str(out_dir))
    return replace(product_model, model_dir=out_dir)


def _torch_state_names(path: Path) -> list[str]:
    return [p.stem for p in path.glob("*.pt")]
