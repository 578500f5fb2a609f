"""What the temporal pull costs: an animation painted with and without it.

A still Tübingen with The Scream's figure moving across it (as
``scripts/readme/make_animation.sh``), painted in the style of The Starry Night by
``jaxstyle.animate`` for each ``OPTIMIZER:λ`` asked for. Prints the mean change of a
still pixel from one painted frame to the next (in [0, 1]), the mean final losses, the
time and, with ``--count``, how many vmapped VGG19 forward passes the chunk ran (each
loss evaluation, with or without its gradient, counted once, as a callback in the loss)
and the L-BFGS line searches: the steps where a frame's first trial failed and the zoom
ran (for every frame of the chunk: a ``while_loop`` under ``vmap`` runs until its
slowest frame is done) and the zoom's iterations per step, summed over steps, of the
slowest frame.

    python scripts/bench_temporal.py --size 64 --runs lbfgs:0,lbfgs:1e4 --count

A chunk's passes with L-BFGS: 1 at the start, 1 per step (the first trial), 2 per zoom
iteration of its slowest frame (under ``vmap`` both branches of the zoom's ``cond`` run),
1 per zoom (the found point's terms) and 1 for the final losses. Measured on the 2-core
EPYC shared with other jobs (6 frames, 128 px, 100 steps, ``--count``): L-BFGS λ=0 182
passes (zoom on 16 steps, 32 iterations); λ=1e4 312 (42 steps, 84 iterations); λ=1e4
evaluating J and ∇J anew at each step (as before bcb95bb: 1 pass more per step, and
curvature pairs of two objectives) 754 (58 steps, 247 iterations, 3 at the limit of 20),
style loss 2.00e6 against 1.79e6. At 64 px, the neighbours refreshed only every 5 or 10
steps (a patch, not kept): 182 and 172 passes against 282, style loss 4.1e6 and 5.1e6
against 2.8e6, still-pixel change 0.0066 and 0.0075 against 0.0056.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax
from PIL import Image

import jaxstyle
from jaxstyle import cells, temporal


def make_clip(images: Path, directory: Path, size: int, frames: int) -> list[np.ndarray]:
    """Write the clip's frames (size x 3/4 size) and return them, float32 in [0, 1]."""
    width, height = size, size * 3 // 4
    scene = Image.open(images / "tubingen.jpg").convert("RGB").resize((width, height))
    figure = Image.open(images / "the_scream.jpg").convert("RGB")
    figure = figure.resize((width * 5 // 32, height // 4))
    out = []
    for i in range(frames):
        frame = scene.copy()
        frame.paste(figure, (width // 16 + i * (width * 7 // 8) // frames, height * 5 // 8))
        frame.save(directory / f"{i + 1}.png")
        out.append(np.asarray(frame, np.float32) / 255)
    return out


def counting(counts: dict) -> None:
    """Count the vmapped forward passes and record each step's line search: patch the
    loss functions and steps that :mod:`jaxstyle.cells` and :mod:`jaxstyle.temporal` use
    (jaxstyle's disk cache of programs stays off, so they are traced anew)."""

    def count_calls(factory):
        @functools.cache
        def wrapped(*a, **k):
            loss_fn = factory(*a, **k)

            def counted(image, args):
                jax.debug.callback(lambda: counts.__setitem__("forward", counts["forward"] + 1))
                return loss_fn(image, args)

            return counted

        return wrapped

    def record_linesearch(factory):
        @functools.cache
        def wrapped(*a, **k):
            step = factory(*a, **k)

            def recorded(carry, args):
                carry, record = step(carry, args)
                if a[1].name == "lbfgs":
                    record["ls_steps"] = optax.tree.get(carry.opt_state, "num_linesearch_steps")
                return carry, record

            return recorded

        return wrapped

    for module in (cells, temporal):  # temporal_loss_fn takes temporal's shared_loss_fn
        module.shared_loss_fn = count_calls(module.shared_loss_fn)
        module.make_step = record_linesearch(module.make_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", default="lbfgs:0,lbfgs:1e4,adam:0,adam:1e4")
    parser.add_argument("--images", type=Path, default=Path("../shared/images"))
    parser.add_argument("--count", action="store_true", help="count forward passes")
    parser.add_argument("--motion", default="none", help="flow or none (the README's: none)")
    parser.add_argument("--weights", default=None, help="a VGG19 weights file")
    args = parser.parse_args()
    counts = {"forward": 0}
    if args.count:
        counting(counts)
    work = Path(tempfile.mkdtemp())
    (work / "clip").mkdir()
    source = make_clip(args.images, work / "clip", args.size, args.frames)
    still = [np.all(a == b, axis=-1) for a, b in zip(source, source[1:], strict=False)]
    style = args.images / "starry_night.jpg"
    for spec in args.runs.split(","):
        optimizer, weight = spec.split(":")
        counts["forward"] = 0
        t = time.perf_counter()
        result = jaxstyle.animate(
            work / "clip",
            style,
            work / f"{optimizer}-{weight}.png",
            size=args.size,
            steps=args.steps,
            optimizer=optimizer,
            temporal_weight=float(weight),
            motion=args.motion,
            weights=args.weights,
        )
        seconds = time.perf_counter() - t
        painted = [np.asarray(Image.open(p), np.float32) / 255 for p in result.frames]
        change = np.mean(
            [
                np.abs(b - a).mean(-1)[m].mean()
                for a, b, m in zip(painted, painted[1:], still, strict=False)
            ]
        )
        records = [json.loads(p.with_suffix(".json").read_text()) for p in result.frames]
        final = {k: np.mean([r["final_losses"][k] for r in records]) for k in ("style", "content")}
        line = (
            f"{optimizer} λ={weight}: still-pixel change {change:.4f}, style {final['style']:.3g}, "
            f"content {final['content']:.3g}, {seconds:.0f} s"
        )
        if args.count:
            line += f", {counts['forward']} forward passes"
            if optimizer == "lbfgs":
                ls = np.array([r["history"]["ls_steps"] for r in records])  # (frames, steps)
                zoomed = ls.max(0) > 1
                line += (
                    f", zoom on {zoomed.sum()} of {ls.shape[1]} steps (per frame "
                    f"{(ls > 1).sum(1).tolist()}), zoom iterations of the slowest frame "
                    f"{ls.max(0)[zoomed].sum()}, at the limit {(ls.max(0) >= 20).sum()}"
                )
        print(line, flush=True)


if __name__ == "__main__":
    main()
