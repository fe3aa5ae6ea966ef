"""Judge the photos as a set: duplicates, blur against the set, shared backgrounds and angles."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from packshot.intake.config import IntakeConfig
from packshot.intake.quality import (
    PhotoFeatures,
    block_difference,
    correlation,
    hamming,
    is_plain,
    palette_distance,
)
from packshot.intake.report import DuplicateGroup, SharedFeature


@dataclass
class Measured:
    """One accepted photo as the set checks see it."""

    file: str
    sha256: str
    features: PhotoFeatures


@dataclass
class SetFindings:
    """What the set checks found; `check` turns it into warnings, advice and a verdict."""

    duplicates: list[DuplicateGroup]
    copy_of: dict[str, tuple[str, str]]  # file → (kind, the first file of its group)
    distinct: list[int]  # indices of one photo per group of duplicates
    blur_threshold: float
    blurry: list[str] = field(default_factory=list)
    dark: list[str] = field(default_factory=list)
    bright: list[str] = field(default_factory=list)
    shared: list[SharedFeature] = field(default_factory=list)


def judge_set(photos: list[Measured], config: IntakeConfig) -> SetFindings:
    """Run every set-level check over the accepted photos (in file order)."""
    duplicates, copy_of, distinct = find_duplicates(photos, config)
    # Extra copies of the same file are used once, so they are judged once.
    originals = [p for p in photos if copy_of.get(p.file, ("", ""))[0] != "exact"]
    findings = SetFindings(duplicates, copy_of, distinct, blur_threshold_for(originals, config))
    for photo in originals:
        f = photo.features
        if f.sharpness < findings.blur_threshold:
            findings.blurry.append(photo.file)
        if f.p99 < config.dark_p99:
            findings.dark.append(photo.file)
        elif f.highlights_clipped > config.bright_clipped_share:
            findings.bright.append(photo.file)
    kept = [photos[i] for i in distinct]
    for shared in (shared_background(kept, config), same_angle(kept, config)):
        if shared is not None:
            findings.shared.append(shared)
    return findings


def find_duplicates(
    photos: list[Measured], config: IntakeConfig
) -> tuple[list[DuplicateGroup], dict[str, tuple[str, str]], list[int]]:
    """Exact duplicates (same sha256), then near duplicates among the rest (pHash + blocks)."""
    # 1. Exact: the same bytes.
    by_hash: dict[str, list[int]] = {}
    for i, photo in enumerate(photos):
        by_hash.setdefault(photo.sha256, []).append(i)
    groups: list[DuplicateGroup] = []
    copy_of: dict[str, tuple[str, str]] = {}
    for members in by_hash.values():
        if len(members) > 1:
            names = [photos[i].file for i in members]
            groups.append(DuplicateGroup("exact", names))
            copy_of.update({name: ("exact", names[0]) for name in names[1:]})
    firsts = [members[0] for members in by_hash.values()]

    # 2. Near: close perceptual hashes, confirmed block by block on the thumbnails.
    parent = {i: i for i in firsts}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for n, i in enumerate(firsts):
        for j in firsts[n + 1 :]:
            a, b = photos[i].features, photos[j].features
            if (
                hamming(a.phash, b.phash) <= config.near_duplicate_distance
                and block_difference(a.thumbnail, b.thumbnail) <= config.near_duplicate_block_diff
            ):
                parent[max(root(i), root(j))] = min(root(i), root(j))
    near: dict[int, list[int]] = {}
    for i in firsts:
        near.setdefault(root(i), []).append(i)
    for members in near.values():
        if len(members) > 1:
            names = [photos[i].file for i in sorted(members)]
            groups.append(DuplicateGroup("near", names))
            copy_of.update({name: ("near", names[0]) for name in names[1:]})
    groups.sort(key=lambda g: [p.file for p in photos].index(g.files[0]))
    return groups, copy_of, sorted(near)


def blur_threshold_for(photos: list[Measured], config: IntakeConfig) -> float:
    """The absolute threshold, raised towards a fraction of the set's median (see IntakeConfig)."""
    threshold = config.blur_threshold
    if len(photos) >= 4:
        median = float(np.median([p.features.sharpness for p in photos]))
        threshold = max(threshold, min(config.blur_relative * median, 3 * config.blur_threshold))
    return threshold


def shared_background(photos: list[Measured], config: IntakeConfig) -> SharedFeature | None:
    """The biggest group of photos on the same background, when most photos are in it."""
    candidates = [p for p in photos if p.features.background is not None]

    def same(a: Measured, b: Measured) -> bool:
        x, y = a.features.background, b.features.background
        assert x is not None and y is not None
        plain = is_plain(x, config) and is_plain(y, config)
        texture_ratio = max(x.gradient, y.gradient) / max(min(x.gradient, y.gradient), 1e-6)
        similar_texture = plain or texture_ratio <= config.background_texture_ratio
        return similar_texture and palette_distance(x, y) <= config.background_distance

    group = _largest_group(candidates, same)
    if not _most(len(group), len(photos), config):
        return None
    backgrounds = [p.features.background for p in group]
    lab = np.mean([b.lab for b in backgrounds if b is not None], axis=0)
    plain = sum(is_plain(b, config) for b in backgrounds if b is not None) > len(group) / 2
    texture = "plain" if plain else "textured"
    return SharedFeature(
        "background", [p.file for p in group], f"{texture} {colour_name(*map(float, lab))}"
    )


def same_angle(photos: list[Measured], config: IntakeConfig) -> SharedFeature | None:
    """The biggest group of photos showing the product from the same angle, when most are."""

    def same(a: Measured, b: Measured) -> bool:
        x, y = a.features, b.features
        if x.silhouette is not None and y.silhouette is not None:
            assert x.appearance is not None and y.appearance is not None
            union = np.logical_or(x.silhouette, y.silhouette).sum()
            iou = np.logical_and(x.silhouette, y.silhouette).sum() / max(union, 1)
            return (
                iou >= config.same_angle_iou
                and correlation(x.appearance, y.appearance) >= config.same_angle_appearance
            )
        return correlation(x.structure, y.structure) >= config.same_angle_structure

    group = _largest_group(photos, same)
    if not _most(len(group), len(photos), config):
        return None
    return SharedFeature("angle", [p.file for p in group])


def _largest_group(
    photos: list[Measured], same: Callable[[Measured, Measured], bool]
) -> list[Measured]:
    """The photo with the most look-alikes, and those look-alikes (a star, not a chain)."""
    best: list[Measured] = []
    for i, centre in enumerate(photos):
        group = [centre] + [p for j, p in enumerate(photos) if j != i and same(centre, p)]
        if len(group) > len(best):
            best = group
    order = {id(p): k for k, p in enumerate(photos)}
    return sorted(best, key=lambda p: order[id(p)])


def _most(size: int, total: int, config: IntakeConfig) -> bool:
    return size >= 3 and size >= math.ceil(config.shared_share * total)


def colour_name(lightness: float, a: float, b: float) -> str:
    """A plain-words name of a CIELAB colour: "white", "light grey", "dark green", "beige"…"""
    chroma = math.hypot(a, b)
    if chroma < 10:
        for limit, name in ((88, "white"), (68, "light grey"), (42, "grey"), (20, "dark grey")):
            if lightness >= limit:
                return name
        return "black"
    hue = math.degrees(math.atan2(b, a)) % 360
    if hue < 20 or hue >= 335:
        name = "pink"
    elif hue < 50:
        name = "pink" if lightness > 70 and chroma < 45 else "red"
    elif hue < 80:
        name = "brown" if lightness < 50 else "beige" if chroma < 30 else "orange"
    elif hue < 115:
        name = "olive" if lightness < 55 else "beige" if chroma < 30 else "yellow"
    elif hue < 170:
        name = "green"
    elif hue < 230:
        name = "teal"
    elif hue < 305:
        name = "blue"
    else:
        name = "purple"
    if name in ("brown", "olive", "beige"):
        return name
    if lightness < 35:
        return f"dark {name}"
    if lightness > 80 and chroma < 40:
        return f"light {name}"
    return name
