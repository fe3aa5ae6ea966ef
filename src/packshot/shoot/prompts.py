"""Turn a merchant's description and a shot preset into the prompt a model reads.

Text only: no torch import. The token-limit check takes the pipeline's tokenizer as an argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packshot.errors import UsageError

PRODUCT_PLACEHOLDER = "{product}"
DESCRIPTION_PLACEHOLDER = "{description}"  # where a preset's prompt puts the merchant's words


class Tokenizer(Protocol):
    """The part of a transformers tokenizer the token-limit check uses."""

    def __call__(self, text: str, **kwargs: Any) -> Any: ...

    def decode(self, token_ids: list[int], **kwargs: Any) -> str: ...


@dataclass(frozen=True)
class ProductWords:
    """How prompts name the product: the trained token and class word ("sks teapot")."""

    token: str | None  # None when shooting a base model alone: it knows no token
    class_word: str
    name: str | None = None  # the merchant's name for it ("blue teapot"), for reports

    @property
    def phrase(self) -> str:
        """What `{product}` becomes: "sks teapot" (or "teapot" for a base model alone)."""
        return f"{self.token} {self.class_word}" if self.token else self.class_word

    def to_dict(self) -> dict[str, str | None]:
        """The words as sidecars and summaries record them."""
        return {
            "name": self.name,
            "token": self.token,
            "class_word": self.class_word,
            "phrase": self.phrase,
        }


@dataclass(frozen=True)
class ComposedPrompt:
    """A description made ready for the model, and what packshot changed on the way."""

    description: str  # the merchant's words, as given
    prompt: str
    negative_prompt: str
    warnings: list[str] = field(default_factory=list)


def read_prompts_file(path: Path) -> list[str]:
    """The descriptions in `path`: one per line; blank lines and lines starting with # skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"Prompts file not found: {path}. Pass a text file with one description per line."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Can't read the prompts file {path} as UTF-8 text ({error}).") from None
    lines = [line.strip() for line in text.splitlines()]
    descriptions = [line for line in lines if line and not line.startswith("#")]
    if not descriptions:
        raise UsageError(
            f"The prompts file {path} holds no descriptions: write one per line, such as "
            '"a female model wearing {product}, walking in the park".'
        )
    return descriptions


def insert_product(description: str, product: ProductWords) -> tuple[str, list[str]]:
    """`description` with `{product}` replaced by the product's token and class, and warnings.

    The LoRA only shows the product when its token is in the prompt, so:
    1. `{product}` is replaced by "sks teapot";
    2. a description that already holds the token is kept as it is;
    3. one that names the class word ("a teapot on a table") gets the token put in front of it
       ("a sks teapot on a table");
    4. one that names neither gets "a photo of sks teapot, " in front.
    Steps 3 and 4 say so in a warning.
    """
    description = " ".join(description.split())
    if not description:
        raise UsageError('A description is empty. Describe the shot, e.g. "{product} on a table".')
    # 1.
    if PRODUCT_PLACEHOLDER in description:
        return description.replace(PRODUCT_PLACEHOLDER, product.phrase), []
    # 2.
    words = {w.lower() for w in re.findall(r"[\w'-]+", description)}
    if product.token and product.token.lower() in words:
        return description, []
    # 3.
    class_word = re.compile(rf"\b{re.escape(product.class_word)}\b", re.IGNORECASE)
    if class_word.search(description):
        if not product.token:
            return description, []
        added = class_word.sub(lambda m: f"{product.token} {m.group(0)}", description, count=1)
        return added, [
            f'"{description}" names the {product.class_word} but not its token '
            f'`{product.token}`: shooting "{added}" so that the trained product appears.'
        ]
    # 4.
    added = f"a photo of {product.phrase}, {description}"
    return added, [
        f'"{description}" doesn\'t mention the product: shooting "{added}". Write {{product}} '
        "where it belongs in the description to place it yourself."
    ]


def compose_prompt(
    description: str,
    product: ProductWords,
    *,
    preset_prompt: str | None = None,
    preset_negative_prompt: str | None = None,
    negative_prompt: str | None = None,
) -> ComposedPrompt:
    """The prompt and negative prompt for one description under one preset.

    The preset's prompt text holds `{description}` where the merchant's words go (a preset's
    prompt without it gets the description in front). Negative prompts are joined: the
    preset's, then the caller's own.
    """
    # 1. The product goes into the merchant's words.
    text, warnings = insert_product(description, product)

    # 2. The preset adds its light, lens and setting around them.
    if preset_prompt:
        if DESCRIPTION_PLACEHOLDER in preset_prompt:
            text = preset_prompt.replace(DESCRIPTION_PLACEHOLDER, text)
        else:
            text = f"{text}, {preset_prompt}"
    text = text.replace(PRODUCT_PLACEHOLDER, product.phrase)

    # 3. Negative prompts merged, without repeating a phrase.
    parts: list[str] = []
    for negative in (preset_negative_prompt, negative_prompt):
        for phrase in (negative or "").split(","):
            phrase = " ".join(phrase.split())
            if phrase and phrase.lower() not in (p.lower() for p in parts):
                parts.append(phrase)
    return ComposedPrompt(description, text, ", ".join(parts), warnings)


def check_token_limit(
    text: str, tokenizer: Tokenizer, limit: int, *, what: str = "prompt"
) -> str | None:
    """A warning saying what the text encoder will cut from `text`, or None if it all fits.

    `limit` is how many tokens it reads (the model family's `prompt_token_limit`: 75 for
    CLIP); the pipeline cuts the rest off, as this check predicts.
    """
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    if len(ids) <= limit:
        return None
    cut = tokenizer.decode(ids[limit:]).strip()
    return (
        f"The {what} is {len(ids)} tokens long; the text encoder reads only {limit}, so "
        f'this end is cut off and ignored: "{cut}". Shorten the description, or put what '
        "matters most first."
    )
