"""Publish a trained model folder to the Hugging Face Hub: private by default, listed files only."""

from __future__ import annotations

from pathlib import Path

from packshot.artifacts.product_model import CARD_FILE, METADATA_FILE, ProductModel
from packshot.errors import PackshotError, UsageError


def files_to_push(model: ProductModel) -> list[str]:
    """The files of the model that `push_to_hub` uploads, relative to its folder: the LoRA in
    every export format, packshot.json, the card and the samples. Checkpoints, the training
    crops (the merchant's product photos) and anything else in the folder stay here."""
    folder = model.model_dir.resolve()
    names = {*model.exports.values(), METADATA_FILE, CARD_FILE, *model.samples}
    return sorted(
        name
        for name in names
        if (folder / name).resolve().is_relative_to(folder) and (folder / name).is_file()
    )


def push_to_hub(
    model_dir: Path | str, repo_id: str, *, private: bool = True, token: str | None = None
) -> str:
    """Upload the model's LoRA files, packshot.json, model card and samples; return the URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    from packshot.models.hub import offline_requested

    # 1. Check everything before contacting the Hub.
    model_dir = Path(model_dir)
    files = files_to_push(ProductModel.load(model_dir))  # a UsageError unless it is finished
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UsageError(
            f"`{repo_id}` is not a Hub repository id: use OWNER/NAME, e.g. my-shop/bose-headphones."
        )
    if offline_requested():
        raise PackshotError(
            f"Can't push to {repo_id}: Hub access is switched off (HF_HUB_OFFLINE is set). The "
            f"model is saved in {model_dir}; push it later with `hf upload {repo_id} {model_dir}`."
        )

    # 2. Create the repository (private unless asked) and upload the listed files only.
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=model_dir,
            allow_patterns=files,
            commit_message="Upload packshot product model",
        )
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        hint = (
            "Log in with `hf auth login` (a token with write access)."
            if status in (401, 403)
            else "Check the repository id and your connection."
        )
        raise PackshotError(f"Pushing {model_dir} to {repo_id} failed ({exc}). {hint}") from None
    except OSError as exc:  # connection refused, DNS, timeouts
        raise PackshotError(
            f"Can't reach the Hugging Face Hub to push {repo_id} ({exc}). The model is saved in "
            f"{model_dir}; push it later with `hf upload {repo_id} {model_dir}`."
        ) from None
    return str(getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}")
