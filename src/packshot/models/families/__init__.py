"""Model families: the interface and registry (`base`), what the flow-matching transformers
share (`flow`), then one module per family (`sd`, `flux2`, `zimage`).

Importing this package registers the built-in families; a new family is one module here,
imported below, that calls `register_family`. No torch at import.
"""

from packshot.models.families import flux2, sd, zimage
from packshot.models.families.base import (
    FAMILIES,
    INPAINT_IN_CHANNELS,
    INSTANT_MODEL,
    PIPELINE_KINDS,
    STAND_IN_KIND,
    TRAINING_MODEL,
    CropGeometry,
    ModelFamily,
    PipelineKind,
    base_models,
    detect_family,
    get_family,
    reference_families,
    register_family,
    stand_in_aliases,
    trainable_families,
)

__all__ = [
    "FAMILIES",
    "INPAINT_IN_CHANNELS",
    "INSTANT_MODEL",
    "PIPELINE_KINDS",
    "CropGeometry",
    "STAND_IN_KIND",
    "TRAINING_MODEL",
    "ModelFamily",
    "PipelineKind",
    "base_models",
    "detect_family",
    "flux2",
    "get_family",
    "reference_families",
    "register_family",
    "sd",
    "stand_in_aliases",
    "trainable_families",
    "zimage",
]
