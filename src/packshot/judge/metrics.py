"""The DreamBooth paper's scores as plain formulas on embeddings: DINO, CLIP-I, CLIP-T.

Ruiz et al., "DreamBooth", CVPR 2023, section 4.1: DINO and CLIP-I are the average pairwise
cosine similarity between the embeddings of generated and real images (ViT-S/16 DINO CLS
tokens; CLIP image embeddings); CLIP-T is the average cosine similarity between the CLIP
embeddings of a generated image and of its prompt.
"""

from __future__ import annotations

import torch


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows of `x` scaled to length 1, in float64 (scores must not depend on the model dtype)."""
    x = x.detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"Embeddings must be a (N, D) matrix, got shape {tuple(x.shape)}.")
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of `a` with every row of `b`: (N, D), (M, D) -> (N, M)."""
    return _unit(a) @ _unit(b).T


def pairwise_per_shot(generated: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Each generated image's mean cosine to all real images: (N, D), (M, D) -> (N,).

    The mean of this over the shots is the paper's average pairwise similarity (every
    generated-real pair counts once), so per-shot and set-level scores agree.
    """
    if len(real) == 0:
        raise ValueError("No real images to compare with.")
    return cosine_matrix(generated, real).mean(dim=1)


def mean_pairwise(generated: torch.Tensor, real: torch.Tensor) -> float:
    """DINO / CLIP-I of a set of generated images: mean cosine over all generated-real pairs."""
    return float(cosine_matrix(generated, real).mean())


def real_images_score(real: torch.Tensor) -> float:
    """The paper's "Real Images" row: mean cosine over pairs of *different* real images.

    Self-pairs (always 1) are left out; needs at least two images.
    """
    n = len(real)
    if n < 2:
        raise ValueError(f"The real-images score needs at least 2 images, got {n}.")
    sims = cosine_matrix(real, real)
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def leave_one_out(real: torch.Tensor) -> torch.Tensor:
    """Each real image's mean cosine to the *other* real images: (M, D) -> (M,).

    What a perfect shot would score: used to calibrate the "product present" threshold.
    """
    n = len(real)
    if n < 2:
        raise ValueError(f"Leave-one-out needs at least 2 images, got {n}.")
    sims = cosine_matrix(real, real)
    return (sims.sum(dim=1) - sims.diagonal()) / (n - 1)


def clip_t(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """CLIP-T of each (image, prompt) pair: row-wise cosine, (N, D), (N, D) -> (N,).

    Equals torchmetrics' CLIPScore / 100 where that is positive (CLIPScore clamps at 0).
    """
    if image.shape != text.shape:
        raise ValueError(
            f"Image and text embeddings must pair up, got shapes {tuple(image.shape)} "
            f"and {tuple(text.shape)}."
        )
    return (_unit(image) * _unit(text)).sum(dim=1)
