"""packshot: product photography from a handful of photos and a text description.

The Python API mirrors the command line: `packshot.intake.check_photos`,
`packshot.models.load.load_pipeline`, … Heavy modules (torch, diffusers) are imported only by the
functions that need them, so `import packshot` stays fast.
"""

import logging

__version__ = "0.1.0"


class _NoTorchvisionNotice(logging.Filter):
    """transformers 5 warns that torchvision is missing and uses its PIL image processors.

    packshot never installs torchvision (it would replace the CPU build of torch), and the PIL
    processors are the ones packshot wants, so the notice is noise for a merchant.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())
