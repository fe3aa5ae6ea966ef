"""Score a folder of shots against the product's photos: `score_shots` -> `ScoreReport`.

Per shot: DINO and CLIP-I (mean cosine to every reference photo), CLIP-T (cosine to its prompt,
the product token replaced by the class word), and whether the product is present. Also
`rank_candidates` (the K best shots, for `shoot --best K`) and `calibrate_on_photos`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from packshot import __version__
from packshot.artifacts.shots import parse_parameters, read_parameters, read_sidecar
from packshot.errors import PhotoError, PhotoSetError, UsageError
from packshot.intake import load_training_set
from packshot.intake.check import folder_entries, skip_reason
from packshot.intake.config import IntakeConfig
from packshot.intake.decode import load_photo
from packshot.intake.prepare import KIND, MANIFEST
from packshot.judge import metrics
from packshot.judge.config import JudgeConfig
from packshot.judge.models import Embedders, ImageKey, image_key
from packshot.judge.presence import PRODUCT_MISSING, Calibration, calibrate, decide_present
from packshot.progress import ProgressCallback, ProgressEvent, no_progress
from packshot.shoot.run import CONTACT_SHEET_FILE

REPORT_KIND = "packshot-score-report"
# Shots of the tiny stand-ins are 64 px; intake's 256 px minimum is for training photos.
_JUDGE_INTAKE = IntakeConfig(min_side=16)
# Files in a shots folder that are not shots: sidecars and reports, skipped without a word.
_NOT_SHOTS = {".json", ".txt", ".html", ".htm", ".csv", ".md", ".log", ".zip", ".safetensors"}
# The contact sheet `shoot` writes beside its shots is a picture of them, not a shot.
_NOT_SHOT_NAMES = {CONTACT_SHEET_FILE}
UNREADABLE = "unreadable"  # a shot that could not be decoded
NO_PROMPT = "no_prompt"  # a shot without a sidecar or metadata prompt: no CLIP-T


@dataclass
class ShotScore:
    """The scores of one shot. Scores are None when the shot couldn't be read (or, for
    CLIP-T, when it has no prompt)."""

    file: str  # name within the shots folder
    prompt: str | None  # as generated, from its sidecar or PNG metadata
    clip_t_prompt: str | None  # the prompt CLIP-T saw: product token replaced by the class word
    dino: float | None
    clip_i: float | None
    clip_t: float | None
    present: bool  # the product is in the shot (False for unreadable shots)
    flags: list[str] = field(default_factory=list)  # product_missing, unreadable, no_prompt, …
    dino_other: float | None = None  # best DINO against another product's photos, if given
    error: str | None = None  # why an unreadable shot couldn't be read

    @property
    def readable(self) -> bool:
        return self.dino is not None

    def verdict(self) -> dict[str, Any]:
        """The scores a shot's sidecar and its summary record."""
        return {
            "dino": self.dino,
            "clip_i": self.clip_i,
            "clip_t": self.clip_t,
            "present": self.present,
            "flags": list(self.flags),
        }


@dataclass
class ScoreReport:
    """Every shot of a folder scored against one product's photos, and the means."""

    shots_dir: str
    reference_dir: str
    references: list[str]  # the reference photos used
    rejected_references: dict[str, str]  # file -> why it was left out
    other_references: dict[str, list[str]]  # other product folder -> its photos
    config: dict[str, Any]  # the JudgeConfig, as a dict
    judges: dict[str, Any]  # which backbones, device, whether tiny stand-ins
    shots: list[ShotScore]
    means: dict[str, float | None]  # dino, clip_i, clip_t, present_share over readable shots
    real_images: dict[str, float]  # the references scored against each other (paper's row)
    warnings: list[str] = field(default_factory=list)
    created: str = ""
    packshot_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {"kind": REPORT_KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreReport:
        if data.get("kind") != REPORT_KIND:
            raise UsageError("This JSON is not a packshot score report (no matching `kind`).")
        values = {k: v for k, v in data.items() if k != "kind"}
        known = {f.name for f in fields(ShotScore)}
        values["shots"] = [
            ShotScore(**{k: v for k, v in shot.items() if k in known})
            for shot in values.get("shots", [])
        ]
        values = {k: v for k, v in values.items() if k in {f.name for f in fields(cls)}}
        return cls(**values)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON to `path`; returns it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScoreReport:
        """Read a report written by `save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"Can't read the score report {path} ({error}).") from None
        return cls.from_dict(data)

    @property
    def config_object(self) -> JudgeConfig:
        return JudgeConfig.from_dict(self.config)


# -- reading folders -------------------------------------------------------------------------


@dataclass
class _Photo:
    name: str
    key: ImageKey
    image: Image.Image


def _entries(folder: Path, what: str) -> list[Path]:
    return [e for e in folder_entries(folder, what) if not skip_reason(e.name, e.is_dir())]


def _load(path: Path) -> _Photo:
    photo = load_photo(path, config=_JUDGE_INTAKE)
    try:
        key = image_key(path)
    except OSError as error:  # gone between reading and stat-ing it
        raise PhotoError(f"{path.name} could not be read ({error}).", "unreadable") from None
    return _Photo(path.name, key, photo.image)


def load_references(folder: str | os.PathLike[str]) -> tuple[list[_Photo], dict[str, str]]:
    """The usable photos of a product folder, and the files left out with why.

    Raises PhotoSetError for a missing or empty folder and for fewer than 2 usable photos:
    DINO and CLIP-I compare a shot with the product's photos, and the real-images score and
    calibration need pairs of them.
    """
    folder = Path(folder)
    entries = _training_set_images(folder) or _entries(folder, "product photos")
    photos: list[_Photo] = []
    rejected: dict[str, str] = {}
    for entry in entries:
        try:
            photos.append(_load(entry))
        except PhotoError as error:
            rejected[entry.name] = str(error)
    if len(photos) < 2:
        found = f"{len(photos)} usable photo" + ("" if len(photos) == 1 else "s")
        why = "".join(f"\n  - {message}" for message in rejected.values())
        raise PhotoSetError(
            f"The product photos in {folder} give {found}; scoring needs at least 2 (5 or more "
            f"give steadier scores). Add photos of the product to the folder.{why}"
        )
    return photos, rejected


def _training_set_images(folder: Path) -> list[Path]:
    """The crops of a training set prepared by intake (as in a model's `training-set/`),
    without its masks, captions and manifest; [] when `folder` isn't one."""

    try:
        if json.loads((folder / MANIFEST).read_text("utf-8")).get("kind") != KIND:
            return []
    except (OSError, ValueError, AttributeError):
        return []
    return [folder / item.file for item in load_training_set(folder).items]


def _shot_prompt(path: Path) -> dict[str, Any]:
    """{"prompt", and "token"/"class_word" if recorded} from the sidecar, else the PNG."""
    data = read_sidecar(path)
    if data is not None and isinstance(data.get("prompt"), str):
        return data
    try:
        text = read_parameters(path)
    except Exception:  # not a PNG, or damaged metadata: the shot simply has no prompt
        text = None
    return {"prompt": parse_parameters(text)["prompt"]} if text else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def clip_t_prompt(prompt: str, token: str | None, class_word: str | None) -> str:
    """`prompt` with the product's unique token replaced by its class word, for CLIP-T.

    "a sks teapot on a table" -> "a teapot on a table": a token right before the class word
    is dropped; elsewhere it becomes the class word. Without a token, the prompt as it is.
    """
    if not token:
        return prompt
    word = re.escape(token)
    if class_word:
        prompt = re.sub(rf"\b{word}\s+(?={re.escape(class_word)}\b)", "", prompt, flags=re.I)
        prompt = re.sub(rf"\b{word}\b", class_word, prompt, flags=re.I)
    else:
        prompt = re.sub(rf"\b{word}\b\s*", "", prompt, flags=re.I)
    return re.sub(r"\s{2,}", " ", prompt).strip()


# -- scoring ---------------------------------------------------------------------------------


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def score_shots(
    shots_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str],
    *,
    config: JudgeConfig | None = None,
    progress: ProgressCallback = no_progress,
    other_reference_dirs: Sequence[str | os.PathLike[str]] = (),
    embedders: Embedders | None = None,
    cache_dir: Path | None = None,
) -> ScoreReport:
    """Score every shot in `shots_dir` against the product photos in `reference_dir`.

    `other_reference_dirs`: folders of photos of *other* products of the same class; a shot
    closer to one of them than to this product (by `config.other_margin`) is flagged missing.
    Pass `embedders` to reuse loaded backbones (and their embedding caches) across calls.
    A shot that can't be read is reported with the flag "unreadable", never fatal.
    """
    config = config or (embedders.config if embedders else JudgeConfig())
    shots_path, refs_path = Path(shots_dir), Path(reference_dir)

    # 1. Check the folders before loading any model.
    references, rejected_refs = load_references(refs_path)
    others = {str(Path(d)): load_references(d)[0] for d in other_reference_dirs}
    shot_files = [
        e
        for e in _entries(shots_path, "shots")
        if e.suffix.lower() not in _NOT_SHOTS and e.name not in _NOT_SHOT_NAMES
    ]
    if not shot_files:
        raise PhotoSetError(f"The shots folder {shots_path} has no shots (PNG or JPEG images).")
    warnings = [
        f"Reference photo {name} was left out: {why}" for name, why in rejected_refs.items()
    ]

    # 2. The backbones, and the product's photos embedded once.
    embedders = embedders or Embedders(config, cache_dir=cache_dir)
    if embedders.dino_ref.tiny or embedders.clip_ref.tiny:
        warnings.append(
            "Scored with tiny random stand-in judges: the numbers test the plumbing and say "
            "nothing about the shots."
        )
    ref_items = [(p.key, p.image) for p in references]
    ref_dino, ref_clip = embedders.dino(ref_items), embedders.clip_image(ref_items)
    other_dino = {d: embedders.dino([(p.key, p.image) for p in ps]) for d, ps in others.items()}

    # 3. Read the shots; an unreadable one is reported and skipped.
    total = len(shot_files)
    shots: list[ShotScore] = []
    readable: list[tuple[int, _Photo]] = []
    for done, path in enumerate(shot_files, start=1):
        meta = _shot_prompt(path)
        prompt = _text(meta.get("prompt"))
        try:
            photo = _load(path)
        except PhotoError as error:
            flags = [UNREADABLE]
            shots.append(ShotScore(path.name, prompt, None, None, None, None, False, flags))
            shots[-1].error = str(error)
            progress(ProgressEvent("score", done, total, f"unreadable {path.name}"))
            continue
        # A shot's own sidecar knows its words best (`shoot` keeps them under "product");
        # the config's are for shots without one.
        product = meta.get("product") if isinstance(meta.get("product"), dict) else meta
        token = _text(product.get("token")) or config.token
        class_word = _text(product.get("class_word")) or config.class_word
        eval_prompt = clip_t_prompt(prompt, token, class_word) if prompt else None
        shots.append(ShotScore(path.name, prompt, eval_prompt, None, None, None, False))
        readable.append((len(shots) - 1, photo))
        progress(ProgressEvent("score", done, total, f"read {path.name}"))

    # 4. Embed the readable shots in batches, then the formulas.
    if readable:
        items = [(photo.key, photo.image) for _, photo in readable]
        shot_dino, shot_clip = embedders.dino(items), embedders.clip_image(items)  # (N, D)
        dino = metrics.pairwise_per_shot(shot_dino, ref_dino)  # (N,)
        clip_i = metrics.pairwise_per_shot(shot_clip, ref_clip)
        # (N, number of other products): each shot against each other product's photos.
        against_others = [metrics.pairwise_per_shot(shot_dino, e) for e in other_dino.values()]
        with_prompt = [j for j, (i, _) in enumerate(readable) if shots[i].clip_t_prompt]
        clip_t: dict[int, float] = {}
        if with_prompt:
            texts = embedders.clip_text(
                [shots[readable[j][0]].clip_t_prompt or "" for j in with_prompt]
            )
            cosines = metrics.clip_t(shot_clip[with_prompt], texts).tolist()
            clip_t = dict(zip(with_prompt, cosines, strict=True))
        for j, (i, _) in enumerate(readable):
            shot = shots[i]
            shot.dino, shot.clip_i = float(dino[j]), float(clip_i[j])
            shot.clip_t = clip_t.get(j)
            if against_others:
                shot.dino_other = max(float(scores[j]) for scores in against_others)
            shot.present, shot.flags = decide_present(shot.dino, shot.dino_other, config)
            if shot.clip_t is None:
                shot.flags.append(NO_PROMPT)

    # 5. Means, the real-images row, and what the merchant should know.
    scored = [s for s in shots if s.readable]
    means = {
        "dino": _mean([s.dino for s in scored]),
        "clip_i": _mean([s.clip_i for s in scored]),
        "clip_t": _mean([s.clip_t for s in scored]),
        "present_share": (sum(s.present for s in scored) / len(scored)) if scored else None,
    }
    real = {
        "dino": metrics.real_images_score(ref_dino),
        "clip_i": metrics.real_images_score(ref_clip),
    }
    if not scored:
        warnings.append(f"None of the {total} shots could be read: see each shot's error.")
    missing = sum(PRODUCT_MISSING in s.flags for s in scored)
    if missing:
        warnings.append(f"{missing} of {len(scored)} shots may not show the product.")
    return ScoreReport(
        shots_dir=str(shots_path.resolve()),
        reference_dir=str(refs_path.resolve()),
        references=[p.name for p in references],
        rejected_references=rejected_refs,
        other_references={d: [p.name for p in ps] for d, ps in others.items()},
        config=config.to_dict(),
        judges=embedders.describe(),
        shots=shots,
        means=means,
        real_images=real,
        warnings=warnings,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


# -- choosing the best -----------------------------------------------------------------------


@dataclass
class Ranking:
    """The shots kept, best first, and what the merchant should be told about them."""

    shots: list[ShotScore]
    warnings: list[str] = field(default_factory=list)


def rank_key(shot: ShotScore, rank_step: float = 0.01) -> tuple[float, ...]:
    """Sort key, smallest first: readable, present, product fidelity (DINO rounded to steps of
    `rank_step`, so near-ties go to the next criterion), prompt fidelity (CLIP-T), CLIP-I."""
    if not shot.readable:
        return (1.0, 1.0, 0.0, 0.0, 0.0)
    step = max(rank_step, 1e-9)
    return (
        0.0,
        0.0 if shot.present else 1.0,
        -round((shot.dino or 0.0) / step),
        -(shot.clip_t if shot.clip_t is not None else -1.0),
        -(shot.clip_i or 0.0),
    )


def rank_candidates(
    scores: ScoreReport | Sequence[ShotScore], k: int, *, rank_step: float | None = None
) -> Ranking:
    """The `k` best shots: by product fidelity, then prompt fidelity; never a shot flagged
    "product missing" while enough others are left, never an unreadable one."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"`k` (--best) must be a whole number of at least 1, got {k!r}.")
    if isinstance(scores, ScoreReport):
        step = rank_step if rank_step is not None else scores.config_object.rank_step
        shots = list(scores.shots)
    else:
        step, shots = (rank_step if rank_step is not None else 0.01), list(scores)
    ordered = sorted(shots, key=lambda s: rank_key(s, step))
    chosen = [s for s in ordered if s.readable][:k]
    warnings: list[str] = []
    if len(chosen) < k:
        warnings.append(
            f"Only {len(chosen)} of the {len(shots)} candidates could be read; {k} were asked for."
        )
    missing = [s.file for s in chosen if not s.present]
    if missing:
        warnings.append(
            f"Only {len(chosen) - len(missing)} candidate(s) show the product; {len(missing)} "
            f"kept anyway may not: {', '.join(missing)}. Render more candidates, train longer, "
            "or add photos of the product."
        )
    return Ranking(chosen, warnings)


# -- calibration on photos -------------------------------------------------------------------


def calibrate_on_photos(
    reference_dir: str | os.PathLike[str],
    other_dirs: Sequence[str | os.PathLike[str]],
    *,
    config: JudgeConfig | None = None,
    embedders: Embedders | None = None,
    cache_dir: Path | None = None,
) -> Calibration:
    """Pick the "present" threshold for this backbone from real photos.

    Positives: each photo of the product scored against the *other* photos of it (leave one
    out: what a perfect shot scores). Negatives: each photo of another product scored against
    the product's photos. Use the result with `config.replace(present_threshold=...)`.
    """
    if not other_dirs:
        raise UsageError(
            "Calibration needs photos of at least one other product (ideally of the same class) "
            "as negatives."
        )
    embedders = embedders or Embedders(config or JudgeConfig(), cache_dir=cache_dir)
    refs, _ = load_references(reference_dir)
    ref_dino = embedders.dino([(p.key, p.image) for p in refs])
    positives = metrics.leave_one_out(ref_dino).tolist()
    negatives: list[float] = []
    for folder in other_dirs:
        photos, _ = load_references(folder)
        emb = embedders.dino([(p.key, p.image) for p in photos])
        negatives += metrics.pairwise_per_shot(emb, ref_dino).tolist()
    return calibrate(positives, negatives)
