"""A placement's records: the request (plain JSON, what a job stores and replays), each shot
written, and the result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from packshot.artifacts.product_model import ProductModel
from packshot.errors import UsageError
from packshot.models.families import get_family

# Without a product model a placement uses this family's inpainting model (its LoRAs' family's
# with one: `ModelFamily.inpaint_model`).
DEFAULT_FAMILY = "sdxl"


def default_inpaint_model(trained: ProductModel | None) -> str | None:
    """The inpainting model of a placement that names none: that of its product model's
    family (the stand-in's, for a model trained on a stand-in; its own base, for a family that
    inpaints with it), else SDXL's; None when there is none."""
    family = get_family((trained.family if trained is not None else None) or DEFAULT_FAMILY)
    if trained is not None and trained.trained_on_stand_in:
        model = family.stand_in_inpaint_model
    else:
        model = family.inpaint_model
    if model is None and trained is not None and family.inpaint_pipeline is not None:
        return trained.base_model  # a family that inpaints with its own base (FLUX.2)
    return model


@dataclass
class PlaceRequest:
    """One pixel-true request. Every field is plain JSON (a job can store and replay it)."""

    photo: str  # the product's photo (a transparent PNG's alpha is its mask)
    descriptions: list[str] = field(default_factory=list)  # the scene: "on a marble counter"
    presets: list[str] = field(default_factory=list)  # shot presets: studio, lifestyle, …
    count: int | None = None  # shots per description and preset (preset's, else 4)
    aspect: str | None = None  # 1:1, 4:5, 3:4, 16:9, 9:16 (preset's, else 1:1)
    seed: int | None = None  # first seed; shot i of a group gets seed + i
    num_inference_steps: int | None = None  # 25
    guidance_scale: float | None = None  # 7.5
    negative_prompt: str | None = None  # added to the preset's
    scheduler: str | None = None  # see shoot.render.SCHEDULERS (default DPM++ 2M Karras)
    model: str | None = None  # the inpainting model: Hub id, folder, tiny-inpaint
    product_model: str | None = None  # a folder `packshot train` wrote: its LoRA and words
    lora_scale: float = 1.0
    product: str | None = None  # what {product} means without a product model ("teapot")
    keep_framing: bool = False  # keep the photo's framing: only the background is replaced
    mask: str | None = None  # the merchant's mask (white = product), same size as the photo
    cutout_model: str | None = None  # "auto", "grabcut", a .onnx file, URL, Hub repo, name
    composition: str | None = None  # hero, thirds, flat-lay (default: the preset's)
    judge: bool = True  # score every shot against the product's photos, flag misses
    dino_model: str | None = None  # None: the default judge (tiny with a tiny model)
    clip_model: str | None = None
    reference: str | None = None  # photos to judge against (default: see reference_for)
    device: str | None = None
    precision: str | None = None
    compile: bool = False  # the fast pipeline: merged LoRA, fused attention, torch.compile
    fp8: bool = False  # fp8 weights and activations where the GPU has them (torchao)
    # Marketplace profiles the shots go to once placed: delivered by whoever runs the request
    # (the placement job, `packshot place --profile`) through `deliver.deliver_run`; `place`
    # itself only places, and a re-run may ask for other profiles.
    profiles: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlaceRequest:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"Unknown placement field(s): {', '.join(unknown)}.")
        return cls(**data)


@dataclass
class PlacedShot:
    """One image written by `place`."""

    path: Path
    sidecar: Path
    preset: str | None
    composition: str
    description: str
    prompt: str
    seed: int
    width: int
    height: int
    placement: dict[str, Any]  # x, y, width, height on the output, and scale
    device_seconds: float
    reused: bool  # written by an earlier run of the same request
    scores: dict[str, Any] | None = None
    # Each marketplace profile's verdict when delivered (`artifacts.shots.ShotRecord.badges`)
    badges: list[dict[str, str]] | None = None


@dataclass
class PlaceResult:
    """What `place` wrote."""

    out_dir: Path
    shots: list[PlacedShot]
    contact_sheet: Path
    summary_path: Path
    cutout: dict[str, Any]  # source ("mask", "alpha", "model", "grabcut"), files, model
    scores_path: Path | None
    flagged: list[str]  # shots the judges couldn't find the product in
    warnings: list[str]
    timings: dict[str, float]
    # With profiles: the delivery in `out_dir` (`DeliveryReport.record`, relative to out_dir)
    delivery: dict[str, Any] | None = None

    def to_dict(self, relative_to: Path | str | None = None) -> dict[str, Any]:
        """JSON-ready; paths relative to `relative_to` when given (a job's workdir)."""

        def path(value: Path | None) -> str | None:
            if value is None:
                return None
            return str(value.relative_to(relative_to) if relative_to is not None else value)

        data = asdict(self)
        for key in ("out_dir", "contact_sheet", "summary_path", "scores_path"):
            data[key] = path(getattr(self, key))
        for shot, original in zip(data["shots"], self.shots, strict=True):
            shot["path"], shot["sidecar"] = path(original.path), path(original.sidecar)
        return data
