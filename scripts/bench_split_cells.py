"""A sweep of few cells on many devices: cells padded over the devices against cells over
groups of devices that split each cell's rows (``sweep(..., split_image=k)``).

With N cells on D > N devices, the plain layout pads the cells to D (repeating the last:
D - N devices compute copies); ``split_image=k`` makes D/k groups of k devices, each
group splitting its cells' rows. For each k dividing D this prints the per-device
memory of one step from XLA's memory analysis (``jaxstyle.estimate``) and the
measured ms per step of the sweep (warmed up, the layouts alternated ``--repeats``
times, the fastest of each). Give host devices on a CPU with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 \\
        python scripts/bench_split_cells.py --cells 2 --size 256 --steps 5
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import jaxstyle
from jaxstyle import examples
from jaxstyle.sweep import plan_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--optimizer", choices=("adam", "lbfgs"), default="lbfgs")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    devices = jax.device_count()
    splits = [k for k in range(1, devices + 1) if devices % k == 0]
    weights = jaxstyle.load_vgg19()
    run = dict(
        weights=weights,
        size=a.size,
        steps=a.steps,
        optimizer=a.optimizer,
        style_weight=[float(w) for w in np.geomspace(1e2, 1e4, a.cells)],
    )
    content, style = examples.example_content(), examples.example_style()
    plans = {k: plan_sweep(content, style, split_image=k, **run) for k in splits}
    for plan in plans.values():
        plan.run()  # compile
    best = {k: float("inf") for k in splits}
    for _ in range(a.repeats):
        for k, plan in plans.items():
            best[k] = min(best[k], plan.run().timings["ms_per_step"])
    print(
        f"{a.cells} cells, {a.size} px, {a.optimizer}, {devices} {jax.default_backend()} "
        f"devices, jax {jax.__version__}"
    )
    print("| rows split over | cell groups | cells per group | peak MiB per device | ms/step |")
    print("|---|---|---|---|---|")
    for k in splits:
        e = jaxstyle.estimate(a.size, batch=a.cells, optimizer=a.optimizer, split_image=k)
        groups = devices // k
        print(
            f"| {k} | {groups} | {-(-a.cells // groups)} | {e.peak_bytes / 2**20:.0f} "
            f"| {best[k]:.0f} |"
        )


if __name__ == "__main__":
    main()
