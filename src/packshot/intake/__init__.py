"""Photo intake: check a merchant's photos one by one and as a set, then prepare training crops.

from packshot.intake import check_photos, prepare_training_set

report = check_photos("photos/")  # PhotoSetReport: .verdict, .advice, .to_json()
training_set = prepare_training_set(
    report, "training-set/", resolution=512, token="sks", class_word="backpack"
)
"""

from packshot.intake.captions import Captioner, HFCaptioner
from packshot.intake.check import check_files, check_photos
from packshot.intake.config import IntakeConfig
from packshot.intake.decode import REASONS, NormalisedPhoto, load_photo
from packshot.intake.prepare import (
    TrainingImage,
    TrainingSet,
    load_training_set,
    prepare_training_set,
)
from packshot.intake.report import (
    AcceptedPhoto,
    DuplicateGroup,
    PhotoScores,
    PhotoSetReport,
    RejectedFile,
    SharedFeature,
    SkippedFile,
)

__all__ = [
    "REASONS",
    "AcceptedPhoto",
    "Captioner",
    "DuplicateGroup",
    "HFCaptioner",
    "IntakeConfig",
    "NormalisedPhoto",
    "PhotoScores",
    "PhotoSetReport",
    "RejectedFile",
    "SharedFeature",
    "SkippedFile",
    "TrainingImage",
    "TrainingSet",
    "check_files",
    "check_photos",
    "load_photo",
    "load_training_set",
    "prepare_training_set",
]
