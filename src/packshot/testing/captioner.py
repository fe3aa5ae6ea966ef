"""A tiny randomly initialised BLIP captioning model, built offline, for tests and demos.

It is a real `BlipForConditionalGeneration` with a real processor (a BERT WordPiece tokenizer
over a few dozen words), saved with `save_pretrained`, so `HFCaptioner` loads it through the
same transformers path as Salesforce/blip-image-captioning-base. Its captions are random
words from its vocabulary.
"""

from __future__ import annotations

import os
from pathlib import Path

# The tokenizer's whole vocabulary: BERT's special tokens, BLIP's decoder start token, words.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = (  # noqa: SIM905 (a sentence of words reads better than 40 quoted strings)
    "a an the of on in with and near red blue green white black yellow brown grey bag "
    "backpack clock can sneaker shoe teapot table floor rock grass wall wood background "
    "product small large wooden leather standing lying studio light"
).split()
IMAGE_SIZE = 32  # px: the vision tower sees 32×32 images, in 8×8 patches


def build_tiny_captioner(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build the tiny captioner in `folder` (unless it is already there); returns the folder."""
    folder = Path(folder)
    if (folder / "config.json").is_file() and (folder / "processor_config.json").is_file():
        return folder

    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,  # the PIL back end: no torchvision needed
        BlipProcessor,
    )

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    config = BlipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,  # odd on purpose, as in transformers' own tiny test models
            "max_position_embeddings": 64,
            "encoder_hidden_size": 32,  # = the vision tower's hidden size
            "pad_token_id": vocab["[PAD]"],
            "bos_token_id": vocab["[DEC]"],  # BLIP starts captions with [DEC]
            "sep_token_id": vocab["[SEP]"],
            "eos_token_id": vocab["[SEP]"],
        },
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
