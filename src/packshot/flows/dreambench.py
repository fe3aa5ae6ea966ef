"""The DreamBench protocol (Ruiz et al., CVPR 2023): train per subject, shoot its prompts, score.

`run_dreambench` trains one model per subject with packshot.train, renders the benchmark's
prompts with packshot.shoot, scores the shots against the subject's own photos with
`score_shots`, and writes `results.csv`, `summary.json`, `results.md` (the paper's table, with
the real-images row computed from the dataset and the paper's Stable Diffusion row beside ours)
and matplotlib plots. A subject whose `scores.json` exists is done and is skipped on a re-run.

With `place_model`, each subject also gets the pixel-true row: its first photo cut out and
placed by packshot.place in a scene painted by that inpainting model for each prompt, scored
the same way (`place-scores.json`, resumable too), as a second row of the table.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packshot import __version__
from packshot.errors import PackshotError, PhotoError, UsageError
from packshot.intake.check import check_photos, folder_entries, skip_reason
from packshot.intake.references import pick_references
from packshot.judge.config import JudgeConfig
from packshot.judge.models import Embedders
from packshot.judge.score import ScoreReport, score_shots
from packshot.models.load import resolve_model
from packshot.place import PlaceRequest, place
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.shoot import ShootRequest, shoot
from packshot.train import TrainConfig, train

PROMPTS_FILE = "prompts_and_classes.txt"
TOKEN = "sks"  # the paper's unique identifier is a rare token; diffusers' examples use "sks"
# Live subjects (their own prompt list: outfits and accessories) are the paper's dogs and cats;
# prompts_and_classes.txt doesn't mark them, so they are told apart by class.
LIVE_CLASSES = frozenset({"dog", "cat"})
# Ruiz et al., Table 1: DreamBooth on Stable Diffusion, and real images against each other.
PAPER_SD = {"dino": 0.668, "clip_i": 0.803, "clip_t": 0.305}
PAPER_REAL = {"dino": 0.774, "clip_i": 0.885}
SUBJECTS_DIR = "subjects"
SCORES_FILE = "scores.json"  # in a subject's folder: written last, marks the subject done
PLACE_SCORES_FILE = "place-scores.json"  # the same for the subject's pixel-true shots
PLACE_DIR = "place"
# With a model that takes reference images (FLUX.2 [klein]): the subject's best photos as
# references, without training ("reference") and with the trained LoRA ("lora+reference").
REFERENCE_MODES = ("reference", "lora+reference")
_TEMPLATE = re.compile(r"'([^']*\{0\}[^']*\{1\}[^']*)'\s*\.format")


@dataclass(frozen=True)
class DreamBenchSpec:
    """The subjects and classes, and the two prompt lists, of `prompts_and_classes.txt`."""

    classes: dict[str, str]  # subject folder name -> class word
    object_prompts: list[str]  # templates with {0} (token) and {1} (class word)
    live_prompts: list[str]

    def prompts_for(self, subject: str) -> list[str]:
        """The subject's prompt templates: the live list for dogs and cats, else objects'."""
        live = self.classes[subject] in LIVE_CLASSES
        return self.live_prompts if live else self.object_prompts


def read_spec(path: str | os.PathLike[str]) -> DreamBenchSpec:
    """Parse DreamBench's `prompts_and_classes.txt`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"Can't read {path} ({error.strerror or error}): the DreamBench folder must hold "
            f"{PROMPTS_FILE} (from github.com/google/dreambooth)."
        ) from None
    classes: dict[str, str] = {}
    section = ""
    lists: dict[str, list[str]] = {"object": [], "live": []}
    for line in text.splitlines():
        stripped = line.strip()
        lowered = stripped.lower()
        if lowered == "object prompts":
            section = "object"
        elif lowered == "live subject prompts":
            section = "live"
        elif section:
            match = _TEMPLATE.search(stripped)
            if match:
                lists[section].append(match.group(1))
        elif "," in stripped and stripped != "subject_name,class":
            name, _, word = stripped.partition(",")
            classes[name.strip()] = word.strip()
    if not classes or not lists["object"] or not lists["live"]:
        raise UsageError(
            f"{path} doesn't look like DreamBench's {PROMPTS_FILE}: found {len(classes)} "
            f"subjects, {len(lists['object'])} object prompts, {len(lists['live'])} live prompts."
        )
    return DreamBenchSpec(classes, lists["object"], lists["live"])


@dataclass
class BenchResult:
    """What a DreamBench run wrote, and its means."""

    out_dir: Path
    results_csv: Path
    summary_json: Path
    table_md: Path
    plots: list[Path]
    subjects_run: list[str]  # trained and scored by this call
    subjects_skipped: list[str]  # done by an earlier call
    means: dict[str, float | None]
    real_images: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    place_means: dict[str, float | None] | None = None  # the pixel-true row, with place_model
    # reference mode → its row's means, for a model that takes reference images
    reference_means: dict[str, dict[str, float | None]] = field(default_factory=dict)


def _check_inputs(
    data_dir: Path,
    subjects: Sequence[str] | None,
    prompts_per_subject: int,
    images_per_prompt: int,
    steps: int,
    resolution: int,
) -> tuple[DreamBenchSpec, list[str]]:
    if not data_dir.is_dir():
        raise UsageError(f"No DreamBench folder at {data_dir}.")
    spec = read_spec(data_dir / PROMPTS_FILE)
    available = sorted(s for s in spec.classes if (data_dir / s).is_dir())
    if not available:
        raise UsageError(f"{data_dir} has none of DreamBench's subject folders (e.g. backpack/).")
    chosen = list(subjects) if subjects else available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise UsageError(
            f"Unknown or missing DreamBench subject(s): {', '.join(unknown)}. Available in "
            f"{data_dir}: {', '.join(available)}."
        )
    for name, value in (
        ("prompts_per_subject", prompts_per_subject),
        ("images_per_prompt", images_per_prompt),
        ("steps", steps),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"`{name}` must be a whole number of at least 1, got {value!r}.")
    longest = max(len(spec.prompts_for(s)) for s in chosen)
    if prompts_per_subject > longest:
        raise UsageError(
            f"`prompts_per_subject` is {prompts_per_subject}, but DreamBench has {longest} "
            "prompts per subject."
        )
    if resolution < 64 or resolution % 8:
        raise UsageError(f"`resolution` must be a multiple of 8, at least 64, got {resolution}.")
    return spec, list(dict.fromkeys(chosen))


def run_dreambench(
    data_dir: str | os.PathLike[str],
    subjects: Sequence[str] | None,
    prompts_per_subject: int,
    images_per_prompt: int,
    steps: int,
    resolution: int,
    model: str,
    out_dir: str | os.PathLike[str],
    *,
    judge: JudgeConfig | None = None,
    num_inference_steps: int | None = None,
    keep_models: bool = False,
    place_model: str | None = None,
    cutout_model: str | None = None,
    progress: ProgressCallback = no_progress,
    cache_dir: Path | None = None,
) -> BenchResult:
    """Run DreamBench on `subjects` (None: every subject folder in `data_dir`).

    Per subject: train `steps` steps at `resolution` on its photos, render the first
    `prompts_per_subject` of its prompts `images_per_prompt` times each (the paper: 25 × 4),
    score the shots against its photos. `num_inference_steps` None is shoot's default.
    Trained models are deleted once their shots are scored unless `keep_models`.
    `place_model` (an inpainting model) adds the pixel-true row; `cutout_model` picks its
    background-removal model (packshot.place's default when None).
    """
    # 1. Check everything before loading or training anything.
    data, out = Path(data_dir), Path(out_dir)
    spec, chosen = _check_inputs(
        data, subjects, prompts_per_subject, images_per_prompt, steps, resolution
    )

    judge = judge or JudgeConfig()
    with_references = resolve_model(model, cache_dir=cache_dir).family.reference_images > 0
    out.mkdir(parents=True, exist_ok=True)
    embedders: Embedders | None = None
    ran: list[str] = []
    skipped: list[str] = []
    warnings: list[str] = []
    reports: dict[str, ScoreReport] = {}
    place_reports: dict[str, ScoreReport] = {}
    reference_reports: dict[str, dict[str, ScoreReport]] = {m: {} for m in REFERENCE_MODES}

    # 2. One subject at a time: train, shoot, score. Done subjects are read back.
    for number, subject in enumerate(chosen, start=1):
        folder = out / SUBJECTS_DIR / subject
        scores_file = folder / SCORES_FILE
        if place_model is not None:
            if embedders is None:
                embedders = Embedders(judge, cache_dir=cache_dir)
            placed = _place_subject(
                data / subject,
                folder,
                spec,
                subject,
                prompts_per_subject,
                images_per_prompt,
                num_inference_steps,
                place_model,
                cutout_model,
                judge,
                embedders,
                cache_dir,
                warnings,
            )
            if placed is not None:
                place_reports[subject] = placed
        for mode in REFERENCE_MODES if with_references else ():
            done = _load_scores(folder / f"{mode.replace('+', '-')}-{SCORES_FILE}")
            if done is not None:
                reference_reports[mode][subject] = done
        if scores_file.is_file():
            try:
                reports[subject] = ScoreReport.load(scores_file)
                skipped.append(subject)
                progress(ProgressEvent("bench", number, len(chosen), f"{subject}: done before"))
                continue
            except UsageError:  # damaged: run it again
                scores_file.unlink()
        class_word = spec.classes[subject]
        progress(ProgressEvent("bench", number - 1, len(chosen), f"{subject}: training"))
        config = TrainConfig(
            model=model,
            class_word=class_word,
            token=TOKEN,
            resolution=resolution,
            max_train_steps=steps,
            checkpointing_steps=0,  # a benchmark run restarts a subject instead
            sample_at_end=False,  # the benchmark's own shots are the samples
        )
        model_dir = folder / "model"
        trained = train(config, data / subject, model_dir, force=True, cache_dir=cache_dir)

        progress(ProgressEvent("bench", number - 1, len(chosen), f"{subject}: shooting"))
        prompts = [
            p.format(TOKEN, class_word) for p in spec.prompts_for(subject)[:prompts_per_subject]
        ]
        shots_dir = folder / "shots"
        if shots_dir.exists():  # from an interrupted run: its shots are not this model's
            shutil.rmtree(shots_dir)
        request = ShootRequest(
            model_dir=trained.model_dir,
            descriptions=prompts,
            count=images_per_prompt,
            num_inference_steps=num_inference_steps,
            seed=0,
        )
        shoot(request, shots_dir, cache_dir=cache_dir)

        progress(ProgressEvent("bench", number - 1, len(chosen), f"{subject}: scoring"))
        if embedders is None:  # loaded once, for every subject
            embedders = Embedders(judge, cache_dir=cache_dir)
        subject_judge = judge.replace(token=TOKEN, class_word=class_word)
        report = score_shots(shots_dir, data / subject, config=subject_judge, embedders=embedders)
        if with_references:
            progress(ProgressEvent("bench", number - 1, len(chosen), f"{subject}: references"))
            for mode, scored in _reference_subject(
                data / subject,
                folder,
                prompts,
                class_word,
                model,
                trained.model_dir,
                images_per_prompt,
                num_inference_steps,
                subject_judge,
                embedders,
                cache_dir,
            ).items():
                reference_reports[mode][subject] = scored
        report.save(scores_file)
        if not keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
        reports[subject] = report
        ran.append(subject)
        progress(ProgressEvent("bench", number, len(chosen), f"{subject}: scored"))

    # 3. Tables, summary and plots over every subject, old and new.
    rows = _rows(reports, spec)
    place_rows = _rows(place_reports, spec, mode="place")
    reference_rows = {m: _rows(reference_reports[m], spec, mode=m) for m in REFERENCE_MODES}
    extra_rows = [row for mode in REFERENCE_MODES for row in reference_rows[mode]]
    results_csv = _write_csv(out / "results.csv", rows + place_rows + extra_rows)
    reference_means = {
        mode: {k: _mean([r[k] for r in reference_rows[mode]]) for k in ("dino", "clip_i", "clip_t")}
        for mode in REFERENCE_MODES
        if with_references
    }
    means = {k: _mean([r[k] for r in rows]) for k in ("dino", "clip_i", "clip_t")}
    place_means = (
        {k: _mean([r[k] for r in place_rows]) for k in ("dino", "clip_i", "clip_t")}
        if place_model is not None
        else None
    )
    real = {
        k: sum(r.real_images[k] for r in reports.values()) / len(reports)
        for k in ("dino", "clip_i")
    }
    for report in reports.values():
        warnings += [w for w in report.warnings if w not in warnings]
    run = {
        "model": model,
        "steps": steps,
        "resolution": resolution,
        "prompts_per_subject": prompts_per_subject,
        "images_per_prompt": images_per_prompt,
        "num_inference_steps": num_inference_steps,
        "judge": judge.to_dict(),
        "place_model": place_model,
        "cutout_model": cutout_model,
    }
    per_subject = {
        s: {
            "class": spec.classes[s],
            **{k: v for k, v in r.means.items()},
            "real_images": r.real_images,
            "shots": len(r.shots),
        }
        for s, r in reports.items()
    }
    summary = {
        "kind": "packshot-dreambench",
        "packshot_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run,
        "subjects": per_subject,
        "means": means,
        "place": None
        if place_model is None
        else {
            "means": place_means,
            "subjects": {s: r.means for s, r in place_reports.items()},
            "shots": len(place_rows),
        },
        "references": {
            mode: {
                "means": reference_means[mode],
                "subjects": {s: r.means for s, r in reference_reports[mode].items()},
            }
            for mode in reference_means
        },
        "real_images": real,
        "paper": {"dreambooth_sd": PAPER_SD, "real_images": PAPER_REAL},
        "warnings": warnings,
    }
    summary_json = out / "summary.json"
    summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    table_md = out / "results.md"
    table = markdown_table(means, real, run, len(reports), len(rows), place_means, reference_means)
    table_md.write_text(table, "utf-8")
    plots = _plots(out, rows, per_subject)
    return BenchResult(
        out,
        results_csv,
        summary_json,
        table_md,
        plots,
        ran,
        skipped,
        means,
        real,
        warnings,
        place_means,
        reference_means,
    )


def _place_subject(
    photos: Path,
    folder: Path,
    spec: DreamBenchSpec,
    subject: str,
    prompts_per_subject: int,
    images_per_prompt: int,
    num_inference_steps: int | None,
    place_model: str,
    cutout_model: str | None,
    judge: JudgeConfig,
    embedders: Any,
    cache_dir: Path | None,
    warnings: list[str],
) -> Any:
    """The subject's pixel-true shots, scored; None (and a warning) when its photo won't cut."""

    scores_file = folder / PLACE_SCORES_FILE
    if scores_file.is_file():
        try:
            return ScoreReport.load(scores_file)
        except UsageError:  # damaged: score again
            scores_file.unlink()
    # The subject's first photo; the prompts with the product where {0} {1} stood.
    photo = next(
        (p for p in folder_entries(photos, "photos") if not skip_reason(p.name, p.is_dir())),
        None,
    )
    if photo is None:
        return None
    class_word = spec.classes[subject]
    descriptions = [
        p.format(TOKEN, class_word).replace(f"{TOKEN} {class_word}", "{product}")
        for p in spec.prompts_for(subject)[:prompts_per_subject]
    ]
    request = PlaceRequest(
        photo=str(photo),
        descriptions=descriptions,
        count=images_per_prompt,
        seed=0,
        num_inference_steps=num_inference_steps,
        model=place_model,
        cutout_model=cutout_model,
        product=class_word,
        judge=False,  # scored below with the benchmark's own judges
    )
    try:
        place(request, folder / PLACE_DIR, cache_dir=cache_dir)
    except PhotoError as error:
        warnings.append(f"{subject}: no pixel-true row ({error})")
        return None
    subject_judge = judge.replace(token=TOKEN, class_word=class_word)
    report = score_shots(folder / PLACE_DIR, photos, config=subject_judge, embedders=embedders)
    report.save(scores_file)
    return report


def _load_scores(path: Path) -> ScoreReport | None:
    """A subject's scores written by an earlier call, or None (a damaged file is removed)."""
    if not path.is_file():
        return None
    try:
        return ScoreReport.load(path)
    except UsageError:
        path.unlink()
        return None


def _reference_subject(
    photos: Path,
    folder: Path,
    prompts: list[str],
    class_word: str,
    model: str,
    model_dir: Path,
    images_per_prompt: int,
    num_inference_steps: int | None,
    judge: JudgeConfig,
    embedders: Any,
    cache_dir: Path | None,
) -> dict[str, ScoreReport]:
    """The subject's shots with its best photos as references: the base model alone (its
    prompts name the class, not the token it never learned) and the trained LoRA with them."""
    references = [
        str(photos / r.file) for r in pick_references(check_photos(photos), folder=photos)
    ]
    untrained = [" ".join(p.replace(TOKEN, "").split()) for p in prompts]
    requests = {
        "reference": ShootRequest(
            model_dir=None,
            base=model,
            product=class_word,
            descriptions=untrained,
            references=references,
        ),
        "lora+reference": ShootRequest(
            model_dir=model_dir, descriptions=prompts, references=references
        ),
    }
    reports = {}
    for mode, request in requests.items():
        name = mode.replace("+", "-")
        shots_dir = folder / name
        if shots_dir.exists():
            shutil.rmtree(shots_dir)
        request.count, request.seed = images_per_prompt, 0
        request.num_inference_steps = num_inference_steps
        shoot(request, shots_dir, cache_dir=cache_dir)
        report = score_shots(shots_dir, photos, config=judge, embedders=embedders)
        report.save(folder / f"{name}-{SCORES_FILE}")
        reports[mode] = report
    return reports


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


_COLUMNS = (
    "subject",
    "class",
    "file",
    "prompt",
    "dino",
    "clip_i",
    "clip_t",
    "present",
    "flags",
    "mode",  # "finetune" (DreamBooth-LoRA shoot), "place" (pixel-true), or a reference mode
)


def _rows(
    reports: dict[str, Any], spec: DreamBenchSpec, mode: str = "finetune"
) -> list[dict[str, Any]]:
    rows = []
    for subject, report in reports.items():
        for shot in report.shots:
            rows.append(
                {
                    "subject": subject,
                    "class": spec.classes.get(subject, ""),
                    "file": shot.file,
                    "prompt": shot.prompt,
                    "dino": shot.dino,
                    "clip_i": shot.clip_i,
                    "clip_t": shot.clip_t,
                    "present": shot.present,
                    "flags": " ".join(shot.flags),
                    "mode": mode,
                }
            )
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown_table(
    means: dict[str, float | None],
    real: dict[str, float],
    run: dict[str, Any],
    subjects: int,
    shots: int,
    place_means: dict[str, float | None] | None = None,
    reference_means: dict[str, dict[str, float | None]] | None = None,
) -> str:
    """The paper's Table 1 layout: one row per method, DINO / CLIP-I / CLIP-T."""
    judge = run["judge"]
    ours = f"packshot ({run['model']}, {run['steps']} steps, {run['resolution']} px)"
    lines = [
        f"# DreamBench: {subjects} subjects, {shots} shots",
        "",
        "| Method | DINO ↑ | CLIP-I ↑ | CLIP-T ↑ |",
        "|---|---|---|---|",
        f"| Real Images (this dataset) | {_f(real['dino'])} | {_f(real['clip_i'])} | – |",
        f"| Real Images (paper) | {PAPER_REAL['dino']:.3f} | {PAPER_REAL['clip_i']:.3f} | – |",
        f"| DreamBooth (Stable Diffusion), paper | {PAPER_SD['dino']:.3f} | "
        f"{PAPER_SD['clip_i']:.3f} | {PAPER_SD['clip_t']:.3f} |",
        f"| {ours} | {_f(means['dino'])} | {_f(means['clip_i'])} | {_f(means['clip_t'])} |",
    ]
    if place_means is not None:
        placed = f"packshot pixel-true (place, {run['place_model']})"
        lines.append(
            f"| {placed} | {_f(place_means['dino'])} | {_f(place_means['clip_i'])} | "
            f"{_f(place_means['clip_t'])} |"
        )
    labels = {
        "reference": "packshot references only (no training)",
        "lora+reference": "packshot LoRA + references",
    }
    for mode, values in (reference_means or {}).items():
        lines.append(
            f"| {labels[mode]} | {_f(values['dino'])} | {_f(values['clip_i'])} | "
            f"{_f(values['clip_t'])} |"
        )
    lines += [
        "",
        f"Judges: DINO `{judge['dino_model']}`, CLIP `{judge['clip_model']}`. "
        f"{run['prompts_per_subject']} prompts × {run['images_per_prompt']} images per subject "
        "(the paper: 25 × 4). The paper's numbers are over 30 subjects; compare like with like.",
        "",
    ]
    if place_means is not None:
        lines += [
            "The pixel-true row pastes the subject's real pixels from its first photo, which is "
            "also among the reference photos: its DINO and CLIP-I favour it by construction, and "
            "prompts that change the subject itself (a colour, a shape) can't be followed, which "
            "its CLIP-T shows.",
            "",
        ]
    return "\n".join(lines)


def _plots(out: Path, rows: list[dict[str, Any]], per_subject: dict[str, Any]) -> list[Path]:
    """Per-subject bars and per-shot score distributions, as PNGs."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no window
        import matplotlib.pyplot as plt
    except ImportError:
        raise PackshotError(
            "The DreamBench plots need matplotlib: `pip install matplotlib`. The results "
            f"themselves are already in {out}."
        ) from None
    metrics = (("dino", "DINO"), ("clip_i", "CLIP-I"), ("clip_t", "CLIP-T"))
    names = list(per_subject)
    bars = out / "per-subject.png"
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names) + 2), 4))
    width = 0.8 / len(metrics)
    for i, (key, label) in enumerate(metrics):
        values = [per_subject[n][key] or 0.0 for n in names]
        ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=label)
    for i, (key, _) in enumerate(metrics):
        ax.axhline(PAPER_SD[key], color=f"C{i}", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("score (dashed: paper, DreamBooth on SD)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(bars, dpi=100)
    plt.close(fig)

    dists = out / "distributions.png"
    fig, axes = plt.subplots(1, len(metrics), figsize=(12, 3.5))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        values = [r[key] for r in rows if r[key] is not None]
        ax.hist(values, bins=20)
        ax.axvline(PAPER_SD[key], color="black", linestyle="--", linewidth=0.8)
        ax.set_title(f"{label} per shot")
    fig.tight_layout()
    fig.savefig(dists, dpi=100)
    plt.close(fig)
    return [bars, dists]


def bench_result_dict(result: BenchResult) -> dict[str, Any]:
    """A JSON-ready view of a `BenchResult`, for `--json` output."""
    data = asdict(result)
    for key in ("out_dir", "results_csv", "summary_json", "table_md"):
        data[key] = str(data[key])
    data["plots"] = [str(p) for p in result.plots]
    return data
