"""Throughput of a vmapped sweep (or batch) against the same cells run one after another.

Runs N cells (style weights spaced geometrically over 1e1..1e4) as one
``jaxstyle.sweep`` (``--mode sweep``: shared targets) or one ``jaxstyle.batch``
of N same-shaped jobs (``--mode batch``: one shape bucket, each job its own
targets), and as N ``jaxstyle.stylize`` calls in this process, same images,
size, steps and optimiser. Both are warmed up first, so compilation is
excluded (and reported separately); then the two alternate ``--repeats`` times
and the fastest of each counts (the machine may be shared). Prints images/s end
to end (targets, init, steps, final losses) and for the optimisation steps
alone, and the ratios.

    python scripts/bench_sweep.py --size 128 --steps 10 --cells 8 --optimizer adam
    python scripts/bench_sweep.py --size 128 --steps 10 --cells 8 --mode batch
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import jaxstyle
from jaxstyle import examples
from jaxstyle.images import load_image, save_image
from jaxstyle.optimize import DRIVERS
from jaxstyle.vgg import COMPUTE_DTYPES, CONV_ALGORITHMS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    ap.add_argument("--mode", choices=("sweep", "batch"), default="sweep")
    ap.add_argument("--repeats", type=int, default=2, help="alternating timed runs of each")
    ap.add_argument("--driver", choices=DRIVERS, default="auto")
    ap.add_argument("--conv-algorithm", choices=CONV_ALGORITHMS, default="auto")
    ap.add_argument("--compute-dtype", choices=COMPUTE_DTYPES, default="float32")
    ap.add_argument("--content", help="content image (default: the built-in example photo)")
    ap.add_argument("--style", help="style image (default: the built-in example painting)")
    a = ap.parse_args()
    weights = jaxstyle.load_vgg19()
    content = load_image(Path(a.content) if a.content else examples.example_content())
    style = load_image(Path(a.style)) if a.style else examples.example_style()
    style_weights = [float(w) for w in np.geomspace(1e1, 1e4, a.cells)]
    common = dict(
        weights=weights,
        size=a.size,
        steps=a.steps,
        optimizer=a.optimizer,
        driver=a.driver,
        conv_algorithm=a.conv_algorithm,
        compute_dtype=a.compute_dtype,
    )

    def one(w):
        return jaxstyle.stylize(content, style, style_weight=w, **common)

    def grid():
        return jaxstyle.sweep(content, style, style_weight=style_weights, **common)

    scratch = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    save_image(scratch / "content.png", content)
    save_image(scratch / "style.png", style)
    manifest = scratch / "jobs.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"content": "content.png", "style": "style.png", "style_weight": w,
                        "output": f"job{i}.png"}) + "\n"
            for i, w in enumerate(style_weights)
        )
    )  # fmt: skip
    runs = [0]

    def jobs():
        runs[0] += 1
        report = jaxstyle.batch(manifest, scratch / f"run{runs[0]}", batch_size=a.cells, **common)
        images = [load_image(p) for p in report.written]
        records = [json.loads(p.with_suffix(".json").read_text()) for p in report.written]
        optimize = records[0]["chunk_timings"]["optimize"]
        return argparse.Namespace(
            images=np.stack(images), timings={"optimize": optimize}, devices=jax.devices()
        )

    if a.mode == "batch":  # the single runs read the same (8-bit) files as the jobs
        content, style = load_image(scratch / "content.png"), load_image(scratch / "style.png")
        grid = jobs  # noqa: F811

    t = time.perf_counter()
    one(style_weights[0])
    warm_single = time.perf_counter() - t
    t = time.perf_counter()
    grid()
    warm_sweep = time.perf_counter() - t

    seq_wall = seq_opt = sweep_wall = sweep_opt = float("inf")
    for _ in range(a.repeats):
        t = time.perf_counter()
        singles = [one(w) for w in style_weights]
        seq_wall = min(seq_wall, time.perf_counter() - t)
        seq_opt = min(seq_opt, sum(r.timings["optimize"] for r in singles))
        t = time.perf_counter()
        swept = grid()
        sweep_wall = min(sweep_wall, time.perf_counter() - t)
        sweep_opt = min(sweep_opt, swept.timings["optimize"])

    diffs = [np.abs(swept.images[i] - r.image) for i, r in enumerate(singles)]
    h, w = swept.images.shape[1:3]
    n = a.cells
    print(
        f"{jax.default_backend()} ({len(swept.devices)} device(s)), {w}x{h} px, {a.optimizer}, "
        f"{swept.settings.conv_algorithm} {a.compute_dtype} convolutions, "
        f"{n} cells x {a.steps} steps, {a.driver} driver, best of {a.repeats}"
    )
    print(f"first call (compile + run): stylize {warm_single:.1f} s, {a.mode} {warm_sweep:.1f} s")
    print(f"{'':>11} {'wall s':>8} {'images/s':>9} {'optimise s':>11} {'images/s':>9}")
    for name, wall, opt in (("sequential", seq_wall, seq_opt), ("vmapped", sweep_wall, sweep_opt)):
        print(f"{name:>11} {wall:8.2f} {n / wall:9.3f} {opt:11.2f} {n / opt:9.3f}")
    print(
        f"speed-up (vmapped / sequential): {seq_wall / sweep_wall:.2f}x end to end, "
        f"{seq_opt / sweep_opt:.2f}x optimisation only; |image difference| "
        f"max {max(d.max() for d in diffs):.1e}, mean {np.mean(diffs):.1e}"
    )


if __name__ == "__main__":
    main()
