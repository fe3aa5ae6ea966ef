"""Marketplace image profiles: each marketplace's rules as data (`presets/marketplaces.json`),
every rule with what the marketplace says and the page that says it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from packshot.errors import UsageError

PROFILES_FILE = Path(__file__).resolve().parents[1] / "presets" / "marketplaces.json"
GENERATED_VERDICTS = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Rule:
    """One rule of a marketplace: its value, what the marketplace says, and where."""

    name: str
    value: Any
    says: str
    source: str


@dataclass(frozen=True)
class Fill:
    """The share of the frame the product's box takes (the larger of width and height share)."""

    min: float
    max: float
    target: float  # what packshot frames to when the product is outside min..max


@dataclass(frozen=True)
class MarketplaceProfile:
    """What one marketplace asks of one kind of image (Amazon's main image, Shopify's, …)."""

    name: str
    label: str
    source: str
    rules: dict[str, Rule]

    def value(self, rule: str, default: Any = None) -> Any:
        return self.rules[rule].value if rule in self.rules else default

    @property
    def generated(self) -> str:
        """What a shot the model drew gets here: "ok", "warn" or "fail"."""
        return str(self.value("generated", "ok"))

    @property
    def white_background(self) -> bool:
        return bool(self.value("white_background", False))

    @property
    def fill(self) -> Fill | None:
        value = self.value("fill")
        return Fill(**value) if value else None

    @property
    def aspect(self) -> tuple[tuple[int, int], bool] | None:
        """((width, height), required) of the frame asked for, or None to keep the shot's."""
        value = self.value("aspect")
        if not value:
            return None
        width, height = value["ratio"]
        return (int(width), int(height)), bool(value["required"])

    @property
    def target_long_side(self) -> int | None:
        """The long side packshot delivers at: the recommended size within the limits."""
        recommended = self.value("recommended_long_side") or self.value("min_long_side")
        if recommended is None:
            return None
        top = self.value("max_long_side") or recommended
        return int(min(max(recommended, self.value("min_long_side") or 0), top))

    @property
    def checked_by_hand(self) -> list[str]:
        return [str(item) for item in self.value("checked_by_hand", [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "source": self.source,
            "rules": {
                name: {"value": r.value, "says": r.says, "source": r.source}
                for name, r in self.rules.items()
            },
        }


@cache
def load_profiles() -> dict[str, MarketplaceProfile]:
    """Every marketplace profile of `presets/marketplaces.json`, by name."""
    data = json.loads(PROFILES_FILE.read_text(encoding="utf-8"))
    profiles = {}
    for name, entry in data["profiles"].items():
        rules = {
            rule: Rule(rule, body["value"], str(body["says"]), str(body["source"]))
            for rule, body in entry["rules"].items()
        }
        profile = MarketplaceProfile(name, str(entry["label"]), str(entry["source"]), rules)
        if profile.generated not in GENERATED_VERDICTS:
            raise ValueError(f"{PROFILES_FILE}: {name}.generated is {profile.generated!r}")
        profiles[name] = profile
    return profiles


def get_profiles(names: str | list[str] | tuple[str, ...]) -> list[MarketplaceProfile]:
    """The profiles named (a list, or one comma-separated string), in the order given."""
    if isinstance(names, str):
        names = [names]
    wanted = [n.strip() for item in names for n in item.split(",") if n.strip()]
    profiles = load_profiles()
    unknown = [n for n in wanted if n not in profiles]
    if unknown or not wanted:
        what = f"Unknown marketplace profile {', '.join(unknown)}" if unknown else "No profile"
        raise UsageError(f"{what}: choose from {', '.join(profiles)} (e.g. amazon-main,shopify).")
    return [profiles[n] for n in dict.fromkeys(wanted)]
