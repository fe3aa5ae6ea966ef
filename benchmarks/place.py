"""Benchmark: what pixel-true mode adds to each shot beside the inpainting model's own time.

Times, on synthetic product photos (a textured product on a gradient, as in the tests):

- cut-out: GrabCut seeded from the border (the fallback when no ONNX model is at hand), per
  photo, at 1280x1280 (DreamBench's size) and 4000x3000 (a 12 MP phone photo);
- compose: placing the product on the canvas, the contact shadow and the edge blending with the
  paste-back, per shot, on SD 1.5's 512² canvas, SDXL's 1024² one and a 12 MP --keep-framing
  output.

The inpainting call itself is the pipeline's: `benchmarks/shoot.py` measures that path's
overhead against bare diffusers. Here the figure to compare is an SDXL inpainting step (~0.1 s
per step on an H100, 25-30 steps a shot): compose should stay well under a second.

    .venv/bin/python benchmarks/place.py              # 3 repeats each
    .venv/bin/python benchmarks/place.py --repeats 1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from packshot.place import compose
from packshot.place.cutout import grabcut_mask

# The synthetic product photos are test material: they live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from placing_support import product_photo  # noqa: E402


def _photo(size: tuple[int, int]) -> tuple[Image.Image, np.ndarray]:
    w, h = size
    return product_photo(size, box=(int(w * 0.3), int(h * 0.2), int(w * 0.7), int(h * 0.85)))


def _time(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is kept")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).with_name("place.json"), help="output file"
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"cutout_s": {}, "compose_s": {}}

    # 1. Cut-out by GrabCut, per photo.
    for size in ((1280, 1280), (4000, 3000)):
        image, truth = _photo(size)
        mask = grabcut_mask(image)
        assert mask is not None
        iou = float((mask & truth).sum() / (mask | truth).sum())
        seconds = _time(lambda image=image: grabcut_mask(image), args.repeats)
        results["cutout_s"][f"{size[0]}x{size[1]}"] = {"seconds": round(seconds, 3), "iou": iou}
        print(f"GrabCut cut-out {size[0]}x{size[1]}: {seconds:.3f} s (IoU {iou:.3f})")

    # 2. Compose per shot: placement, shadow, blending and paste-back.
    image, truth = _photo((1280, 1280))
    pixels = np.asarray(image)
    hero = compose.get_composition("hero")
    for canvas in ((512, 512), (1024, 1024)):
        scene = np.full((canvas[1], canvas[0], 3), 180, np.uint8)

        def one_shot(canvas: tuple[int, int] = canvas, scene: np.ndarray = scene) -> None:
            placement, _ = compose.place_product(pixels, truth, canvas, hero)
            compose.composite(compose.add_shadow(scene, placement, hero.shadow), placement)

        seconds = _time(one_shot, args.repeats)
        results["compose_s"][f"placed {canvas[0]}x{canvas[1]}"] = round(seconds, 3)
        print(f"compose, placed on {canvas[0]}x{canvas[1]}: {seconds:.3f} s per shot")
    big, big_truth = _photo((4000, 3000))
    big_pixels = np.asarray(big)
    big_scene = np.full_like(big_pixels, 180)

    def keep_framing_shot() -> None:
        placement = compose.keep_framing(big_pixels, big_truth)
        compose.composite(compose.add_shadow(big_scene, placement, "contact"), placement)

    seconds = _time(keep_framing_shot, args.repeats)
    results["compose_s"]["keep-framing 4000x3000"] = round(seconds, 3)
    print(f"compose, --keep-framing at 4000x3000: {seconds:.3f} s per shot")

    results["machine"] = {"platform": platform.platform(), "processor": platform.processor()}
    results["repeats"] = args.repeats
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
