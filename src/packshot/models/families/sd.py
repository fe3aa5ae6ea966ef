"""Stable Diffusion 1.5 and SDXL, and their inpainting variants: UNet denoisers conditioned by
CLIP text encoders (one for SD 1.5, two for SDXL).
"""

from __future__ import annotations

from packshot.models.families.base import ModelFamily, register_family

_SD_CLASSES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
)
_SDXL_CLASSES = (
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
)

SD15 = register_family(
    ModelFamily(
        name="sd15",
        label="Stable Diffusion 1.5",
        text2img_pipeline="StableDiffusionPipeline",
        # A plain SD 1.5 model can still inpaint: diffusers blends the mask into the latents.
        inpaint_pipeline="StableDiffusionInpaintPipeline",
        resolution=512,
        text_encoders=1,
        is_inpaint=False,
        class_names=_SD_CLASSES,
        stand_in="tiny",
    )
)
SDXL = register_family(
    ModelFamily(
        name="sdxl",
        label="Stable Diffusion XL",
        text2img_pipeline="StableDiffusionXLPipeline",
        inpaint_pipeline="StableDiffusionXLInpaintPipeline",
        resolution=1024,
        text_encoders=2,
        is_inpaint=False,
        class_names=_SDXL_CLASSES,
        stand_in="tiny-sdxl",
    )
)
SD15_INPAINT = register_family(
    ModelFamily(
        name="sd15-inpaint",
        label="Stable Diffusion 1.5 Inpainting",
        text2img_pipeline=None,
        inpaint_pipeline="StableDiffusionInpaintPipeline",
        resolution=512,
        text_encoders=1,
        is_inpaint=True,
        class_names=_SD_CLASSES,
        stand_in="tiny-inpaint",
    )
)
# Without it, diffusers/stable-diffusion-xl-1.0-inpainting-0.1 would pass for a plain SDXL model
# and fail at its first step with a channel mismatch.
SDXL_INPAINT = register_family(
    ModelFamily(
        name="sdxl-inpaint",
        label="Stable Diffusion XL Inpainting",
        text2img_pipeline=None,
        inpaint_pipeline="StableDiffusionXLInpaintPipeline",
        resolution=1024,
        text_encoders=2,
        is_inpaint=True,
        class_names=_SDXL_CLASSES,
    )
)
