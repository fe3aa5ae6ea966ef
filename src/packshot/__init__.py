"""packshot: product photography from a handful of photos and a text description.

The Python API mirrors the command line: `packshot.intake.check_photos`,
`packshot.runtime.load_pipeline`, … Heavy modules (torch, diffusers) are imported only by the
functions that need them, so `import packshot` stays fast.
"""

__version__ = "0.1.0"
