"""Captions for training photos: the fixed DreamBooth prompt, optionally with a model's words."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from packshot.errors import ModelLoadError, ModelNotFoundError

# Openings captioning models like to start with, which only repeat "a photo of".
_FILLER = re.compile(
    r"^(a |an )?(close-?up |black and white )?(photo|picture|image|photograph) of |^there is |"
    r"^arafed |^araffe ",
    re.IGNORECASE,
)


@runtime_checkable
class Captioner(Protocol):
    """Anything that describes images in words: one caption per image, in order."""

    name: str  # recorded in the training set's manifest

    def caption(self, images: Sequence[Image.Image]) -> list[str]: ...


def instance_prompt(token: str, class_word: str) -> str:
    """The DreamBooth prompt for the product: "a photo of sks backpack"."""
    return f"a photo of {token} {class_word}"


def combine_caption(token: str, class_word: str, generated: str = "") -> str:
    """The instance prompt, then the model's words: "a photo of sks backpack, on a rock".

    The token and class word always come first, whatever the model said.
    """
    base = instance_prompt(token, class_word)
    text = " ".join(generated.split()).strip(" .,;:")
    for _ in range(2):  # "arafed picture of …"
        text = _FILLER.sub("", text).strip(" .,;:")
    return f"{base}, {text}" if text else base


class HFCaptioner:
    """A Hugging Face image-to-text model (BLIP-style: Salesforce/blip-image-captioning-base).

    Loaded through transformers' AutoProcessor and AutoModelForImageTextToText from a Hub id
    or a local folder written by `save_pretrained`. `device` is as for
    `packshot.models.device.pick_device`: None or "auto" picks the best one here.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = None,
        max_new_tokens: int = 30,
        batch_size: int = 8,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from packshot.models.device import pick_device

        self.name = str(model)
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(
                f"`max_new_tokens` and `batch_size` must be positive, got {max_new_tokens} and "
                f"{batch_size}."
            )
        local = Path(model).expanduser()
        looks_local = local.is_absolute() or str(model).startswith((".", "~")) or local.exists()
        if looks_local and not local.is_dir():
            raise ModelNotFoundError(
                f"No captioning model at {local}: pass a folder written by save_pretrained or "
                "a Hub id such as Salesforce/blip-image-captioning-base."
            )
        source = str(local) if looks_local else str(model)
        try:
            self.processor: Any = AutoProcessor.from_pretrained(source)
            self.model: Any = AutoModelForImageTextToText.from_pretrained(source)
        except OSError as exc:
            raise ModelNotFoundError(
                f"Captioning model {self.name!r} could not be found or downloaded "
                f"({_first_line(exc)}): check the id, or that it is in the Hugging Face cache "
                "when offline."
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"{self.name!r} is not a captioning model packshot can load "
                f"({_first_line(exc)}): use a BLIP-style image-to-text model."
            ) from None
        self.device = pick_device(device)
        self.model.to(self.device).eval()
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, generated greedily."""
        import torch

        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                tokens = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
                )
            captions.extend(self.processor.batch_decode(tokens, skip_special_tokens=True))
        return [" ".join(c.split()) for c in captions]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
