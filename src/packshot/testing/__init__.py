"""Offline stand-ins for tests and the demo: tiny seeded judges and a captioner.

The tiny pipelines are `packshot.models.standins`; the test material itself (the synthetic
photo corpus, pixel-true fixtures) lives under tests/. Nothing here downloads anything.
"""
