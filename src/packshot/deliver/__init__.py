"""Marketplace-ready delivery: shots checked against marketplace profiles, fixed where that is
honest, written as sRGB JPEGs with a report; and exported for the shop.

from packshot.deliver import deliver, export_delivery

report = deliver(Path("shots/"), ["amazon-main", "shopify"], Path("delivery/"))
export_delivery(Path("delivery/"), "shopify", Path("feeds/"), image_base_url="https://cdn/x/")

`profiles`: the marketplace rules as data (`presets/marketplaces.json`). `measure`: what the
rules check, measured on a file. `upscale`: Lanczos, or a diffusion upscaler with a fidelity
check. `run`: the delivery itself, and `deliver_run`: a run's shots into its `delivery/`
folder (shoots, placements, instant and catalogue shoots; their jobs and their commands).
`report`: delivery.json read back and the HTML page. `shop`: the shop exports. Importing this
package is light (the API reads deliveries and exports them); OpenCV and the placement's
geometry load with `deliver` and its records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packshot.deliver.profiles import MarketplaceProfile, get_profiles, load_profiles
from packshot.deliver.report import read_report
from packshot.deliver.shop import ExportResult, export_delivery

if TYPE_CHECKING:
    from packshot.deliver.run import (
        DeliveryReport,
        DeliveryShot,
        ImageDelivery,
        ProfileResult,
        deliver,
        deliver_run,
    )

__all__ = [
    "DeliveryReport",
    "DeliveryShot",
    "ExportResult",
    "ImageDelivery",
    "MarketplaceProfile",
    "ProfileResult",
    "deliver",
    "deliver_run",
    "export_delivery",
    "get_profiles",
    "load_profiles",
    "read_report",
]

_LAZY = {
    "DeliveryReport",
    "DeliveryShot",
    "ImageDelivery",
    "ProfileResult",
    "deliver",
    "deliver_run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module("packshot.deliver.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
