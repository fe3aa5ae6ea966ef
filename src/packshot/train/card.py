"""The model card (`README.md`) of a trained model, with Hugging Face Hub metadata front-matter."""

from __future__ import annotations

import json
from pathlib import Path

from packshot.artifacts.product_model import METADATA_FILE, ProductModel
from packshot.models.families import get_family
from packshot.train.exports import DIFFUSERS, EXPORT_FORMATS


def model_card(model: ProductModel, samples: list[str]) -> str:
    """The card's text from the model's metadata and sample images (relative paths)."""
    family = get_family(str(model.family))  # its base models' license, Hub tag and pipeline
    config = model.config
    prompt = str(model.instance_prompt)
    tags = ["text-to-image", "diffusers", "lora", "dreambooth", "packshot", str(family.card_tag)]
    tags.append("template:sd-lora")
    front = [
        "---",
        f"base_model: {json.dumps(model.base_model)}",
        f"license: {family.license}",
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

    name = model.product or f"{model.token} {model.class_word}"
    pipeline = family.pipeline_class_name("text2img")
    other_tools = "\n".join(
        f"For {EXPORT_FORMATS[name].readers if name in EXPORT_FORMATS else name}, use `{file}`."
        for name, file in model.exports.items()
        if name != DIFFUSERS.name
    )
    body = f"""
# {name}: a packshot product LoRA

A DreamBooth-LoRA of **{name}** for `{model.base_model}`, trained by packshot
{model.packshot_version} on {len(model.photos)} photos.
Use the instance prompt `{prompt}` (the token `{model.token}` stands for the product).

## Use it

```python
import torch
from diffusers import {pipeline}

pipe = {pipeline}.from_pretrained({json.dumps(model.base_model)})
pipe.load_lora_weights("path/to/this/folder")
image = pipe({json.dumps(prompt + ", on a marble table, studio light")}).images[0]
```

{other_tools}

## Training

| setting | value |
|---|---|
| steps | {model.final_step} (final loss {model.final_loss:.4f}) |
| learning rate | {config["learning_rate"]} ({config["lr_scheduler"]}) |
| warm-up steps | {config["lr_warmup_steps"]} |
| rank | {config["rank"]} |
| resolution | {config["resolution"]} px |
| aspect buckets | {_buckets(model)} |
| batch size | {config["train_batch_size"]} |
| prior preservation | {config["with_prior_preservation"]} |
| text encoder LoRA | {config["train_text_encoder"]} |
| preset | {config.get("preset") or "custom"} |

The whole config, the photo hashes and the timings are in `{METADATA_FILE}`.
"""
    if samples:
        body += "\n## Samples\n\n" + "\n".join(f"![sample]({p})" for p in samples) + "\n"
    return "\n".join(front) + "\n" + body


def _buckets(model: ProductModel) -> str:
    """The card's word on the sizes it trained at: "512x512 (4 photos), 576x448 (2 photos)",
    with "square crops only" when buckets were off."""
    if not model.buckets:
        return "none recorded (square crops)"
    sizes = ", ".join(
        f"{b['width']}x{b['height']} ({b['photos']} photo{'s' if b['photos'] != 1 else ''})"
        for b in model.buckets
    )
    return sizes if model.config.get("buckets", True) else f"off: {sizes}, square crops only"


def write_model_card(model: ProductModel, samples: list[str]) -> Path:
    """Write the card into the model's folder; its path."""
    model.card_path.write_text(model_card(model, samples), encoding="utf-8")
    return model.card_path
