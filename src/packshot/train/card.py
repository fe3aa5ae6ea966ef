"""The model card (`README.md`) of a trained model, with Hugging Face Hub metadata front-matter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Licenses of the base models packshot's families come from (Hub license ids).
_LICENSES = {"sd15": "creativeml-openrail-m", "sdxl": "openrail++"}
_FAMILY_TAGS = {"sd15": "stable-diffusion", "sdxl": "stable-diffusion-xl"}


def model_card(meta: dict[str, Any], samples: list[str]) -> str:
    """The card's text from the model's `packshot.json` data and sample images (relative paths)."""
    family = meta["family"]
    config = meta["config"]
    prompt = meta["instance_prompt"]
    tags = ["text-to-image", "diffusers", "lora", "dreambooth", "packshot", _FAMILY_TAGS[family]]
    tags.append("template:sd-lora")
    front = [
        "---",
        f"base_model: {json.dumps(meta['base_model'])}",
        f"license: {_LICENSES[family]}",
        "library_name: diffusers",
        f"instance_prompt: {json.dumps(prompt)}",
        "tags:",
        *[f"- {tag}" for tag in tags],
    ]
    if samples:
        front.append("widget:")
        for path in samples:
            front += [f"- text: {json.dumps(prompt)}", "  output:", f"    url: {path}"]
    front.append("---")

    name = meta.get("product") or f"{meta['token']} {meta['class_word']}"
    pipeline = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    body = f"""
# {name}: a packshot product LoRA

A DreamBooth-LoRA of **{name}** for `{meta["base_model"]}`, trained by packshot
{meta["packshot_version"]} on {meta["num_photos"]} photos.
Use the instance prompt `{prompt}` (the token `{meta["token"]}` stands for the product).

## Use it

```python
import torch
from diffusers import {pipeline}

pipe = {pipeline}.from_pretrained({json.dumps(meta["base_model"])})
pipe.load_lora_weights("path/to/this/folder")
image = pipe({json.dumps(prompt + ", on a marble table, studio light")}).images[0]
```

For AUTOMATIC1111 or ComfyUI, use `pytorch_lora_weights_kohya.safetensors`.

## Training

| setting | value |
|---|---|
| steps | {meta["final_step"]} (final loss {meta["final_loss"]:.4f}) |
| learning rate | {config["learning_rate"]} ({config["lr_scheduler"]}) |
| warm-up steps | {config["lr_warmup_steps"]} |
| rank | {config["rank"]} |
| resolution | {config["resolution"]} px |
| batch size | {config["train_batch_size"]} |
| prior preservation | {config["with_prior_preservation"]} |
| text encoder LoRA | {config["train_text_encoder"]} |
| preset | {config.get("preset") or "custom"} |

The whole config, the photo hashes and the timings are in `packshot.json`.
"""
    if samples:
        body += "\n## Samples\n\n" + "\n".join(f"![sample]({p})" for p in samples) + "\n"
    return "\n".join(front) + "\n" + body


def write_model_card(model_dir: Path, meta: dict[str, Any], samples: list[str]) -> Path:
    path = model_dir / "README.md"
    path.write_text(model_card(meta, samples), encoding="utf-8")
    return path
