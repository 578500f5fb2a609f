"""Does the motion-compensated pull (``animate --motion flow``) hold a camera pan together,
and does it leave a still scene as it was?

Two clips built from tubingen.jpg, painted in the style of The Starry Night with the
default pull λ, each with ``motion="none"`` and ``"flow"`` (and λ = 0 for reference):

- pan: ``--frames`` crop windows sliding ``--pan`` px to the right per frame. Measured:
  the mean |painted_{t+1} shifted back by the pan - painted_t| over the interior
  (``MARGIN`` px in from every side), in [0, 1], over the pairs of frames.
- still: a still Tübingen with The Scream's figure moving across it (as
  ``scripts/readme/make_animation.sh``). Measured: the mean change between consecutive
  painted frames at the pixels whose content frames are the same.

With ``--pairs``, each pair's change is printed too: the pairs across a chunk's border
(every ``--batch-size`` frames) are the seams. Each run's optimisation time and whole time
are printed, and the flows' cost on their own (their compilation, and the estimates of a
chunk). The painted frames go to ``--out`` (one PNG strip per run, to look at).

    python scripts/bench_motion.py --size 96 --frames 6 --steps 100 --out /tmp/motion
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

import jaxstyle
from jaxstyle.flow import optical_flow
from jaxstyle.presets import DEFAULT_PRESET, get_preset

MARGIN = 4
"""Pixels left out at each side of the pan's frames when they are compared."""


def pan_clip(photo: Image.Image, width: int, height: int, frames: int, step: int) -> list:
    """``frames`` crops (``width`` x ``height``) of ``photo``, ``step`` px apart."""
    wide = width + step * (frames - 1)
    photo = photo.convert("RGB").resize((wide, round(wide * photo.height / photo.width)))
    top = (photo.height - height) // 2
    return [photo.crop((step * i, top, step * i + width, top + height)) for i in range(frames)]


def still_clip(scene: Image.Image, figure: Image.Image, width: int, frames: int) -> list:
    """A still ``scene`` (``width`` wide, 4:3) with ``figure`` moving along its bottom."""
    s = width / 128  # make_animation.sh's clip, at 128 px
    scene = scene.convert("RGB").resize((width, round(96 * s)))
    figure = figure.convert("RGB").resize((round(20 * s), round(24 * s)))
    out = []
    for i in range(frames):
        frame = scene.copy()
        frame.paste(figure, (round((8 + 14 * i * 8 / frames) * s), round(62 * s)))
        out.append(frame)
    return out


def pan_changes(painted: list[np.ndarray], step: int) -> list[float]:
    """Per pair of frames, the mean |painted_{t+1} shifted back by ``step`` px - painted_t|
    in the interior."""
    m, w = MARGIN, painted[0].shape[1]
    return [
        float(np.abs(b[m:-m, m : w - step - m] - a[m:-m, m + step : w - m]).mean())
        for a, b in zip(painted, painted[1:], strict=False)
    ]


def still_changes(painted: list[np.ndarray], contents: list[np.ndarray]) -> list[float]:
    """Per pair of frames, the mean change between them where their content is the same."""
    changes = []
    for a, b, ca, cb in zip(painted, painted[1:], contents, contents[1:], strict=False):
        still = np.all(ca == cb, axis=-1)
        changes.append(float(np.abs(b - a)[still].mean()))
    return changes


def paint(frames: list, style: Path, out: Path, name: str, **options) -> tuple[list, dict]:
    """The painted frames (each (H, W, 3) in [0, 1]) of a clip, and the run's times."""
    directory = out / f"{name}.clip"
    directory.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        frame.save(directory / f"{i:02d}.png")
    t0 = time.perf_counter()
    result = jaxstyle.animate(directory, style, out / f"{name}.png", **options)
    seconds = time.perf_counter() - t0
    painted = [np.asarray(Image.open(p), np.float32) / 255 for p in result.frames]
    strip = np.hstack([np.pad(x, ((0, 0), (0, 2), (0, 0)), constant_values=1) for x in painted])
    Image.fromarray((strip * 255).round().astype(np.uint8)).save(out / f"{name}_strip.png")
    return painted, {"optimize": result.report.timings["optimize"], "total": seconds}


def flow_cost(frames: list) -> tuple[float, float]:
    """(the first estimate's seconds, with its compilation; the seconds of a chunk's
    2 (N - 1) estimates after it)."""
    x = [np.asarray(f, np.float32) / 255 for f in frames]
    t0 = time.perf_counter()
    optical_flow(x[0], x[1]).block_until_ready()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a, b in zip(x, x[1:], strict=False):
        optical_flow(a, b).block_until_ready()
        optical_flow(b, a).block_until_ready()
    return first, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/images"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/jaxstyle_motion"))
    parser.add_argument("--size", type=int, default=96, help="frame width (4:3)")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--pan", type=int, default=4, help="px per frame")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--optimizers", default="adam,lbfgs")
    parser.add_argument("--clips", default="pan,still")
    parser.add_argument("--reference", action="store_true", help="also λ = 0")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="frames per chunk (animate's default: 8)"
    )
    parser.add_argument(
        "--pairs", action="store_true", help="also each pair's change (a chunk's seams)"
    )
    args = parser.parse_args()

    width, height = args.size, args.size * 3 // 4
    photo = Image.open(args.images / "tubingen.jpg")
    clips = {
        "pan": pan_clip(photo, width, height, args.frames, args.pan),
        "still": still_clip(photo, Image.open(args.images / "the_scream.jpg"), width, args.frames),
    }
    style = args.images / "starry_night.jpg"
    first, chunk = flow_cost(clips["pan"])
    print(f"flow at {width}x{height}: first {first:.2f} s (compiling); {args.frames} frames' ")
    print(f"{2 * (args.frames - 1)} estimates {chunk:.2f} s")
    print("| clip | optimiser | λ | motion | change | style loss | optimise | total |")
    print("|---|---|---|---|---|---|---|---|")
    pairs = []
    weight = get_preset(DEFAULT_PRESET).temporal_weight
    runs = [("none", weight), ("flow", weight)]
    if args.reference:
        runs.insert(0, ("none", 0.0))
    for clip in args.clips.split(","):
        contents = [np.asarray(f, np.float32) / 255 for f in clips[clip]]
        for optimizer in args.optimizers.split(","):
            for motion, weight in runs:
                name = f"{clip}_{optimizer}_{motion}_{weight:g}"
                painted, times = paint(
                    clips[clip],
                    style,
                    args.out,
                    name,
                    size=width,
                    steps=args.steps,
                    optimizer=optimizer,
                    temporal_weight=weight,
                    motion=motion,
                    progress=False,
                    batch_size=args.batch_size,
                )
                if clip == "pan":
                    changes = pan_changes(painted, args.pan)
                else:
                    changes = still_changes(painted, contents)
                change = float(np.mean(changes))
                pairs.append(f"{name}: " + " ".join(f"{c:.4f}" for c in changes))
                record = args.out / f"{name}.frames" / "frame_00002.json"
                style_loss = _final(record, "style")
                print(
                    f"| {clip} | {optimizer} | {weight:g} | {motion} | {change:.4f} | "
                    f"{style_loss:.3g} | {times['optimize']:.0f} s | {times['total']:.0f} s |",
                    flush=True,
                )
    if args.pairs:
        print(f"each pair's change (frames t, t + 1; chunks of {args.batch_size} frames):")
        print("\n".join(pairs))


def _final(record: Path, term: str) -> float:
    """A painted frame's final ``term`` loss, from its record."""
    import json

    return json.loads(record.read_text())["final_losses"][term]


if __name__ == "__main__":
    main()
