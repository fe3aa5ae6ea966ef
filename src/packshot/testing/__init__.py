"""Offline stand-ins for tests and the demo: tiny seeded pipelines, judges and a captioner.

The test material itself (the synthetic photo corpus, pixel-true fixtures) lives under tests/.

Nothing here downloads anything. Import the submodule you need (`packshot.testing.pipelines`
pulls in torch and diffusers; the others stay light).
"""
