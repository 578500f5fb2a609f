"""Winograd's tile rule against F(2x2, 3x3) only, alternated in fresh processes.

``jaxstyle.vgg.winograd_tile`` runs a Winograd convolution (CPU, float32,
blocks 3-5) by F(4x4, 3x3) when it has at least ``WINOGRAD_F4_MIN_TILES``
output tiles of 4x4, else by F(2x2, 3x3). This script times the same work with
that rule ("rule") and with the threshold out of reach ("f2 only"), each in
its own process (the threshold is read when a program is traced), for
``--rounds`` alternating rounds. Each process runs once to compile, then
``--repeats`` timed calls, and reports its best:

- ``--mode single``: one ``jaxstyle.stylize`` of ``--steps`` Adam steps, ms per
  step (a 1-step call's time subtracted: targets, init, final losses);
- ``--mode sweep``: one ``jaxstyle.sweep`` of ``--cells`` style weights,
  ``--steps`` Adam steps, wall seconds.

    python scripts/bench_winograd_tiles.py --mode single --size 256 --steps 5
    python scripts/bench_winograd_tiles.py --mode sweep --size 128 --cells 8 --steps 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

OUT_OF_REACH = 10**9


def child(a: argparse.Namespace) -> None:
    import numpy as np

    import jaxstyle
    import jaxstyle.vgg
    from jaxstyle import examples
    from jaxstyle.images import load_image

    jaxstyle.vgg.WINOGRAD_F4_MIN_TILES = a.min_tiles
    weights = jaxstyle.load_vgg19()
    content = load_image(Path(a.content)) if a.content else load_image(examples.example_content())
    style = load_image(Path(a.style)) if a.style else examples.example_style()
    common = dict(weights=weights, size=a.size, optimizer="adam")

    def single(steps):
        return jaxstyle.stylize(content, style, steps=steps, **common)

    def sweep():
        style_weights = [float(w) for w in np.geomspace(1e1, 1e4, a.cells)]
        return jaxstyle.sweep(content, style, style_weight=style_weights, steps=a.steps, **common)

    def timed(fn, *args):
        t = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t

    times = []
    if a.mode == "single":
        single(1)
        single(a.steps + 1)
        for _ in range(a.repeats):
            times.append((timed(single, a.steps + 1) - timed(single, 1)) / a.steps * 1e3)
    else:
        sweep()
        times = [timed(sweep) for _ in range(a.repeats)]
    print(json.dumps(min(times)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("single", "sweep"), default="single")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--content", help="content image (default: the built-in example photo)")
    ap.add_argument("--style", help="style image (default: the built-in example painting)")
    ap.add_argument("--min-tiles", type=int, help=argparse.SUPPRESS)  # set in the children
    a = ap.parse_args()
    if a.min_tiles is not None:
        return child(a)

    import jaxstyle.vgg

    variants = {"rule": jaxstyle.vgg.WINOGRAD_F4_MIN_TILES, "f2 only": OUT_OF_REACH}
    unit = "ms/step" if a.mode == "single" else "s"
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(a.rounds):
        for name, tiles in variants.items():
            argv = [sys.executable, __file__, *sys.argv[1:], "--min-tiles", str(tiles)]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"{name:>8}: {results[name][-1]:.4g} {unit}", flush=True)
    cells = f", {a.cells} cells" if a.mode == "sweep" else ""
    what = f"{a.size} px, {a.steps} Adam steps{cells}"
    print(f"{a.mode}, {what}, best of {a.repeats} per process, {a.rounds} rounds alternated:")
    for name, values in results.items():
        print(f"{name:>8}: {', '.join(f'{v:.4g}' for v in values)} {unit}")
    ratio = min(results["f2 only"]) / min(results["rule"])
    print(f"f2 only / rule (best): {ratio:.2f}")


if __name__ == "__main__":
    main()
