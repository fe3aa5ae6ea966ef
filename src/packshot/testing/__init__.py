"""Offline stand-ins for tests and the demo: tiny seeded pipelines, sample photos, a captioner.

Nothing here downloads anything. Import the submodule you need (`packshot.testing.pipelines`
pulls in torch and diffusers; the others stay light).
"""
