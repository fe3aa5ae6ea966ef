"""The judge: the paper's formulas, CLIP-T against torchmetrics, scoring a folder, ranking,
calibration, bad input and the report; on tiny random DINO/CLIP models, DreamBench's backpack
and rendered bags."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import photo_corpus as photos
from packshot.artifacts.provenance import GENERATED
from packshot.artifacts.shots import save_png
from packshot.errors import ModelLoadError, ModelNotFoundError, PhotoSetError, UsageError
from packshot.judge import (
    JudgeConfig,
    calibrate,
    decide_present,
    metrics,
    rank_candidates,
    score_shots,
    write_report,
)
from packshot.judge.models import Embedders, image_key, resolve_judge
from packshot.judge.score import (
    ScoreReport,
    ShotScore,
    calibrate_on_photos,
    clip_t_prompt,
    load_references,
)
from packshot.progress import ProgressEvent

PARAMS = (
    "{prompt}\nNegative prompt: blurry\n"
    "Steps: 2, Sampler: Euler, CFG scale: 7.0, Seed: 1, Size: 64x64"
)
OTHER_PRODUCTS = {
    "blue-bag": (40, 70, 200),
    "green-bag": (40, 150, 60),
    "white-bag": (235, 235, 230),
}
TINY = JudgeConfig(dino_model="tiny", clip_model="tiny", class_word="backpack", token="sks")


@pytest.fixture(scope="module")
def embedders(cache_dir: Path) -> Embedders:
    return Embedders(TINY, cache_dir=cache_dir)


def _shot(src: Path, out: Path, prompt: str, size: int = 64) -> Path:
    with Image.open(src) as image:
        small = image.convert("RGB").resize((size, size))
    return save_png(small, out, PARAMS.format(prompt=prompt), source_type=GENERATED)


@pytest.fixture(scope="module")
def products(dreambench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DreamBench's backpack (as the repo ships it) and three other products: shopping bags
    of three colours, 6 photos each, each in its own folder."""
    root = tmp_path_factory.mktemp("products")
    shutil.copytree(dreambench / "backpack", root / "backpack")
    for seed, (name, colour) in enumerate(OTHER_PRODUCTS.items()):
        images = [
            photos.render_product((320, 320), yaw=yaw, pitch=pitch, colour=colour, seed=seed)
            for yaw, pitch in photos.VIEWS[seed : seed + 6]
        ]
        photos.write_photos(root / name, images)
    return root


@pytest.fixture(scope="module")
def shots(products: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Backpack and bag photos as 64 px 'shots': PNG metadata, a JPEG with a sidecar, a copy
    of a reference photo, one without any prompt, a broken file, a sidecar and a sub-folder."""
    folder = tmp_path_factory.mktemp("shots")
    backpack = products / "backpack"
    _shot(backpack / "00.jpg", folder / "a-backpack.png", "a sks backpack on the beach")
    _shot(
        products / "blue-bag" / "photo-01.jpg", folder / "b-bag.png", "a sks backpack in the snow"
    )
    with Image.open(backpack / "03.jpg") as image:
        image.convert("RGB").resize((80, 80)).save(folder / "c-backpack.jpg", quality=90)
    # As `shoot` writes it: the product's words under "product".
    sidecar = {
        "prompt": "a red zwx backpack",
        "product": {"token": "zwx", "class_word": "backpack"},
    }
    (folder / "c-backpack.json").write_text(json.dumps(sidecar))
    shutil.copy(backpack / "01.jpg", folder / "d-reference-copy.jpg")
    with Image.open(products / "green-bag" / "photo-00.jpg") as image:
        image.convert("RGB").resize((64, 64)).save(folder / "e-no-prompt.png")
    (folder / "f-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    Image.new("RGB", (64, 64)).save(folder / "contact-sheet.png")  # shoot's, not a shot
    (folder / "report").mkdir()
    (folder / "report" / "old.png").write_bytes(b"ignored: sub-folders are not shots")
    return folder


@pytest.fixture(scope="module")
def report(shots: Path, products: Path, embedders: Embedders) -> ScoreReport:
    events: list[ProgressEvent] = []
    result = score_shots(
        shots, products / "backpack", config=TINY, progress=events.append, embedders=embedders
    )
    assert [e.done for e in events] == list(range(1, 7)) and events[-1].total == 6
    return result


# -- the formulas, on hand-made embeddings ---------------------------------------------------


def test_pairwise_scores_on_hand_made_embeddings() -> None:
    generated = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # lengths don't matter: cosines
    real = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    per_shot = metrics.pairwise_per_shot(generated, real)
    assert per_shot.tolist() == pytest.approx([(1 + r) / 2, (0 + r) / 2])
    # The set score is the mean over all 4 generated-real pairs.
    assert metrics.mean_pairwise(generated, real) == pytest.approx((1 + r + 0 + r) / 4)
    assert metrics.mean_pairwise(generated, real) == pytest.approx(float(per_shot.mean()))


def test_real_images_row_and_leave_one_out_skip_self_pairs() -> None:
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    # Pairs of different images: (0,1)=0, (0,2)=r, (1,2)=r, each counted both ways.
    assert metrics.real_images_score(real) == pytest.approx((0 + r + r) / 3)
    assert metrics.leave_one_out(real).tolist() == pytest.approx([r / 2, r / 2, r])
    with pytest.raises(ValueError, match="at least 2"):
        metrics.real_images_score(real[:1])


def test_clip_t_is_row_wise_cosine() -> None:
    image = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    text = torch.tensor([[2.0, 0.0], [-1.0, 1.0], [0.0, 1.0]])
    assert metrics.clip_t(image, text).tolist() == pytest.approx([1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match="pair up"):
        metrics.clip_t(image, text[:2])


def test_clip_t_prompt_replaces_the_token_by_the_class_word() -> None:
    assert clip_t_prompt("a sks teapot on the beach", "sks", "teapot") == "a teapot on the beach"
    assert clip_t_prompt("a photo of sks, shiny", "sks", "teapot") == "a photo of teapot, shiny"
    assert clip_t_prompt("a sks teapot", "sks", None) == "a teapot"
    assert clip_t_prompt("a teapot", None, "teapot") == "a teapot"
    assert clip_t_prompt("a sksteapot", "sks", "teapot") == "a sksteapot"  # whole words only


# -- CLIP-T agrees with torchmetrics ---------------------------------------------------------


class _TensorFeatures(torch.nn.Module):
    """`CLIPModel` as torchmetrics 1.9 expects it (transformers 4): `get_*_features` return the
    projected tensor. transformers 5 returns a ModelOutput holding that same tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.model.get_text_features(*args, **kwargs).pooler_output


def test_clip_t_matches_torchmetrics_clip_score(
    report: ScoreReport, shots: Path, embedders: Embedders
) -> None:
    import numpy as np

    clip_score = pytest.importorskip("torchmetrics.multimodal.clip_score")  # a dev dependency

    metric = clip_score.CLIPScore(
        model_name_or_path=lambda: (
            _TensorFeatures(embedders.clip_model),
            embedders.clip_processor,
        )
    )
    compared = 0
    for shot in report.shots:
        if shot.clip_t is None:
            continue
        with Image.open(shots / shot.file) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
        metric.reset()
        metric.update(pixels, shot.clip_t_prompt)
        theirs = float(metric.compute()) / 100
        assert theirs == pytest.approx(max(shot.clip_t, 0.0), abs=1e-4), shot.file
        compared += shot.clip_t > 0  # CLIPScore clamps at 0: only positives test the formula
    assert compared >= 2


# -- scoring a folder ------------------------------------------------------------------------


def test_score_shots_reads_every_shot_and_its_prompt(report: ScoreReport) -> None:
    by_file = {s.file: s for s in report.shots}
    assert sorted(by_file) == [
        "a-backpack.png",
        "b-bag.png",
        "c-backpack.jpg",
        "d-reference-copy.jpg",
        "e-no-prompt.png",
        "f-broken.png",
    ]
    assert by_file["a-backpack.png"].prompt == "a sks backpack on the beach"  # PNG metadata
    assert by_file["a-backpack.png"].clip_t_prompt == "a backpack on the beach"
    assert by_file["c-backpack.jpg"].clip_t_prompt == "a red backpack"  # the JSON sidecar
    no_prompt = by_file["e-no-prompt.png"]
    assert no_prompt.prompt is None and no_prompt.clip_t is None and "no_prompt" in no_prompt.flags
    assert no_prompt.dino is not None  # still judged for the product

    broken = by_file["f-broken.png"]
    assert broken.flags == ["unreadable"] and not broken.present and broken.dino is None
    assert "f-broken.png" in (broken.error or "")

    for shot in report.shots:
        if shot.readable:
            assert -1 <= shot.dino <= 1 and -1 <= shot.clip_i <= 1  # type: ignore[operator]
            assert shot.present == (shot.dino >= TINY.present_threshold)  # type: ignore[operator]
            assert ("product_missing" in shot.flags) == (not shot.present)
    scored = [s for s in report.shots if s.readable]
    assert report.means["dino"] == pytest.approx(sum(s.dino for s in scored) / 5)  # type: ignore[misc]
    with_t = [s.clip_t for s in scored if s.clip_t is not None]
    assert report.means["clip_t"] == pytest.approx(sum(with_t) / len(with_t))
    assert report.judges["tiny_stand_in"] is True
    assert any("tiny random stand-in" in w for w in report.warnings)


def test_per_shot_dino_is_the_mean_over_every_reference(
    report: ScoreReport, products: Path, embedders: Embedders
) -> None:
    # A shot that is reference photo 01 itself: cosine 1 with itself, and with each other
    # reference what that photo scores leave-one-out.
    refs, _ = load_references(products / "backpack")
    ref_dino = embedders.dino([(p.key, p.image) for p in refs])
    index = [p.name for p in refs].index("01.jpg")
    loo = float(metrics.leave_one_out(ref_dino)[index])
    expected = (1 + (len(refs) - 1) * loo) / len(refs)
    copy = next(s for s in report.shots if s.file == "d-reference-copy.jpg")
    assert copy.dino == pytest.approx(expected, abs=1e-6)
    assert report.real_images["dino"] == pytest.approx(metrics.real_images_score(ref_dino))


def test_each_image_is_embedded_once_per_path_and_mtime(
    report: ScoreReport, shots: Path, products: Path, embedders: Embedders
) -> None:
    runs = dict(embedders.runs)
    again = score_shots(shots, products / "backpack", config=TINY, embedders=embedders)
    assert embedders.runs == runs  # nothing ran again
    assert [s.dino for s in again.shots] == [s.dino for s in report.shots]

    # A shot rewritten (new mtime) is embedded again, and only that one.
    path = shots / "a-backpack.png"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    score_shots(shots, products / "backpack", config=TINY, embedders=embedders)
    assert embedders.runs == {"dino": runs["dino"] + 1, "clip": runs["clip"] + 1}
    assert image_key(path) != (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def test_report_json_round_trip(report: ScoreReport, tmp_path: Path) -> None:
    path = report.save(tmp_path / "scores.json")
    loaded = ScoreReport.load(path)
    assert loaded == report
    assert json.loads(path.read_text())["kind"] == "packshot-score-report"
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(UsageError, match="not a packshot score report"):
        ScoreReport.load(tmp_path / "other.json")


def test_other_products_flag_shots_closer_to_them(
    shots: Path, products: Path, embedders: Embedders
) -> None:
    # A margin of 2 can never be met (cosines differ by at most 2): every shot is "closer".
    strict = TINY.replace(present_threshold=-1.0, other_margin=2.0)
    result = score_shots(
        shots,
        products / "backpack",
        config=strict,
        embedders=embedders,
        other_reference_dirs=[products / "blue-bag"],
    )
    readable = [s for s in result.shots if s.readable]
    assert all(s.dino_other is not None for s in readable)
    assert all(s.flags[:2] == ["product_missing", "closer_to_other_product"] for s in readable)
    lenient = TINY.replace(present_threshold=-1.0, other_margin=-2.0)
    result = score_shots(
        shots,
        products / "backpack",
        config=lenient,
        embedders=embedders,
        other_reference_dirs=[products / "blue-bag"],
    )
    assert all(s.present for s in result.shots if s.readable)
    assert list(result.other_references) == [str(products / "blue-bag")]


# -- the presence decision and its calibration -----------------------------------------------


def test_decide_present() -> None:
    config = JudgeConfig(present_threshold=0.6, other_margin=0.05)
    assert decide_present(0.7, None, config) == (True, [])
    assert decide_present(0.5, None, config) == (False, ["product_missing"])
    assert decide_present(0.7, 0.68, config) == (
        False,
        ["product_missing", "closer_to_other_product"],
    )
    assert decide_present(0.7, 0.6, config) == (True, [])


def test_calibrate_on_hand_made_scores() -> None:
    separable = calibrate([0.8, 0.75, 0.9], [0.4, 0.5, 0.55])
    assert 0.55 < separable.threshold < 0.75 and separable.balanced_accuracy == 1.0
    assert separable.threshold == pytest.approx(0.65)  # the middle of the widest gap
    overlapping = calibrate([0.7, 0.6, 0.45], [0.5, 0.3, 0.2, 0.1])
    # Between 0.3 and 0.45: all positives, one negative in 4 (J = 0.75); the cut at 0.55
    # would miss a positive in 3 instead (J = 0.67).
    assert overlapping.threshold == pytest.approx(0.375)
    assert overlapping.true_positive_rate == 1.0
    assert overlapping.false_positive_rate == 0.25
    with pytest.raises(UsageError, match="both kinds"):
        calibrate([0.7], [])


def test_calibrate_on_photos_of_other_products(
    products: Path, embedders: Embedders, tmp_path: Path
) -> None:
    others = [products / name for name in OTHER_PRODUCTS]
    result = calibrate_on_photos(products / "backpack", others, embedders=embedders)
    assert result.positives == 6 and result.negatives == 18
    # The threshold reproduces the rates it reports on the same photos.
    refs, _ = load_references(products / "backpack")
    ref_dino = embedders.dino([(p.key, p.image) for p in refs])
    positives = metrics.leave_one_out(ref_dino).tolist()
    tpr = sum(p >= result.threshold for p in positives) / len(positives)
    assert tpr == result.true_positive_rate
    assert result.balanced_accuracy >= 0.5
    # …and plugs into the config that scores shots.
    config = TINY.replace(present_threshold=result.threshold)
    assert config.present_threshold == result.threshold
    with pytest.raises(UsageError, match="other product"):
        calibrate_on_photos(products / "backpack", [], embedders=embedders)


# -- choosing the K best ---------------------------------------------------------------------


def _s(name: str, dino: float | None, clip_t: float | None, present: bool) -> ShotScore:
    flags = [] if present else ["product_missing"]
    if dino is None:
        flags = ["unreadable"]
    return ShotScore(name, "p", "p", dino, dino, clip_t, present, flags)


def test_rank_candidates_prefers_present_then_fidelity_then_prompt() -> None:
    candidates = [
        _s("missing-but-high-clip-t", 0.50, 0.40, False),
        _s("present-low", 0.70, 0.20, True),
        _s("present-high", 0.803, 0.20, True),
        _s("present-tie-better-prompt", 0.798, 0.30, True),  # the same to 2 decimals
        _s("unreadable", None, None, False),
    ]
    ranking = rank_candidates(candidates, 2)
    assert [s.file for s in ranking.shots] == ["present-tie-better-prompt", "present-high"]
    assert ranking.warnings == []

    ranking = rank_candidates(candidates, 4)
    assert ranking.shots[-1].file == "missing-but-high-clip-t"
    assert "missing-but-high-clip-t" in ranking.warnings[0]  # said out loud

    ranking = rank_candidates(candidates, 6)
    assert "unreadable" not in [s.file for s in ranking.shots]
    assert any("could be read" in w for w in ranking.warnings)
    with pytest.raises(UsageError, match="at least 1"):
        rank_candidates(candidates, 0)


def test_rank_candidates_on_a_report(report: ScoreReport) -> None:
    ranking = rank_candidates(report, 3)
    assert len(ranking.shots) == 3 and all(s.readable for s in ranking.shots)
    present = [s for s in report.shots if s.present]
    assert [s.present for s in ranking.shots] == sorted(
        [s.present for s in ranking.shots], reverse=True
    )
    assert sum(s.present for s in ranking.shots) == min(3, len(present))


# -- bad input -------------------------------------------------------------------------------


def test_bad_reference_folders(
    tmp_path: Path, shots: Path, products: Path, embedders: Embedders
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PhotoSetError, match="0 usable photos; scoring needs at least 2"):
        score_shots(shots, empty, embedders=embedders)

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("these are my photos")
    (junk / "photo.jpg").write_text("<html><body>a saved web page</body></html>")
    with pytest.raises(
        PhotoSetError, match=r"(?s)notes\.txt is a text file.*photo\.jpg is a web page"
    ):
        score_shots(shots, junk, embedders=embedders)

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(products / "backpack" / "00.jpg", one / "00.jpg")
    with pytest.raises(PhotoSetError, match="1 usable photo; scoring needs at least 2"):
        score_shots(shots, one, embedders=embedders)

    with pytest.raises(PhotoSetError, match="does not exist"):
        score_shots(shots, tmp_path / "nowhere", embedders=embedders)


def test_bad_shot_folders(tmp_path: Path, products: Path, embedders: Embedders) -> None:
    empty = tmp_path / "shots"
    empty.mkdir()
    (empty / "a.json").write_text("{}")
    with pytest.raises(PhotoSetError, match="has no shots"):
        score_shots(empty, products / "backpack", embedders=embedders)

    # Only unreadable shots: a report that says so, not a crash.
    (empty / "a.png").write_bytes(b"")
    result = score_shots(empty, products / "backpack", embedders=embedders)
    assert result.shots[0].flags == ["unreadable"] and "empty" in (result.shots[0].error or "")
    assert result.means["dino"] is None
    assert any("None of the 1 shots could be read" in w for w in result.warnings)


def test_bad_model_references(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="--dino-model: .*HF_HUB_OFFLINE"):
        resolve_judge("facebook/no-such-dino", "dino")  # tests run offline
    with pytest.raises(ModelNotFoundError, match="is not `tiny`, a folder here"):
        resolve_judge("tinyy", "clip")
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_judge(str(tmp_path / "weights"), "dino")
    clip_folder = resolve_judge("tiny", "clip", cache_dir=cache_dir).path
    with pytest.raises(ModelLoadError, match="is a `clip` model, but the DINO judge needs"):
        resolve_judge(str(clip_folder), "dino")
    with pytest.raises(UsageError, match="--clip-model needs a model"):
        resolve_judge(" ", "clip")


def test_judge_config_is_validated_and_round_trips() -> None:
    config = JudgeConfig(present_threshold=0.5, class_word="can")
    assert JudgeConfig.from_dict({**config.to_dict(), "from_the_future": 1}) == config
    with pytest.raises(UsageError, match="present_threshold"):
        JudgeConfig(present_threshold=1.5)
    with pytest.raises(UsageError, match="batch_size"):
        JudgeConfig(batch_size=0)
    with pytest.raises(UsageError, match="dino_model"):
        JudgeConfig(dino_model="")


# -- the tiny judges -------------------------------------------------------------------------


def test_tiny_judges_load_through_the_real_classes(cache_dir: Path, embedders: Embedders) -> None:
    import transformers

    dino = resolve_judge("tiny", "dino", cache_dir=cache_dir)
    clip = resolve_judge("tiny", "clip", cache_dir=cache_dir)
    assert dino.path == cache_dir.resolve() / "judges" / "tiny-dino" and dino.tiny
    assert isinstance(embedders.dino_model, transformers.ViTModel)
    assert isinstance(embedders.clip_model, transformers.CLIPModel)
    assert isinstance(embedders.clip_processor.tokenizer, transformers.CLIPTokenizer)
    # The real CLIP BPE: "teapot" is one word-final token of the real vocabulary.
    assert embedders.clip_processor.tokenizer.tokenize("a teapot") == ["a</w>", "teapot</w>"]
    # Built once: resolving again reuses the folder.
    mtime = (clip.path / "model.safetensors").stat().st_mtime_ns
    assert resolve_judge("tiny", "clip", cache_dir=cache_dir).path == clip.path
    assert (clip.path / "model.safetensors").stat().st_mtime_ns == mtime


# -- the report ------------------------------------------------------------------------------


def test_report_page_and_contact_sheet(report: ScoreReport, tmp_path: Path) -> None:
    files = write_report(report, tmp_path / "out")
    page = files.html.read_text(encoding="utf-8")
    order = [page.index(f"</b> {s.file}</div>") for s in rank_candidates(report, 5).shots]
    assert order == sorted(order)  # best first
    assert page.index("f-broken.png</div>") > max(order)  # unreadable last
    assert page.count("data:image/jpeg;base64,") == 5  # the readable shots, inlined
    rel = os.path.relpath(Path(report.shots_dir) / "a-backpack.png", tmp_path / "out")
    assert f"href='{Path(rel).as_posix()}'" in page
    with Image.open(files.contact_sheet) as sheet:
        # 6 shots in one row of 6 tiles: a 192 px thumbnail, 4 caption lines, padding.
        assert sheet.format == "PNG" and sheet.size == (6 * (192 + 16), 192 + 4 * 14 + 16)

    default = write_report(report)  # into report/ inside the shots folder
    assert default.html.parent == Path(report.shots_dir) / "report"


def test_hub_downloads_fetch_one_copy_of_the_pytorch_weights() -> None:
    from packshot.judge.models import _select_files

    clip_repo = [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "preprocessor_config.json",
        "tokenizer.json",
        "vocab.json",
        ".gitattributes",
        "README.md",
    ]
    assert sorted(_select_files(clip_repo)) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
        "vocab.json",
    ]
    dino_repo = ["config.json", "preprocessor_config.json", "pytorch_model.bin", "README.md"]
    assert sorted(_select_files(dino_repo)) == [
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
    ]


def test_judges_for_shots_of_a_stand_in_are_the_stand_ins_unless_named() -> None:
    tiny = JudgeConfig.for_models(None, None, stand_in=True, token="sks", present_threshold=None)
    assert (tiny.dino_model, tiny.clip_model, tiny.token) == ("tiny", "tiny", "sks")
    assert tiny.present_threshold == JudgeConfig().present_threshold  # None keeps the default
    real = JudgeConfig.for_models(None, None, stand_in=False)
    assert (real.dino_model, real.clip_model) == (
        JudgeConfig().dino_model,
        JudgeConfig().clip_model,
    )
    named = JudgeConfig.for_models("my/dino", None, stand_in=True)
    assert (named.dino_model, named.clip_model) == ("my/dino", "tiny")
