"""Measure the loop driver and weight-passing choices on this backend.

Compares, for the same Adam objective (jcjohnson preset, real VGG19):
  * driver "python" (Python loop over a jitted step) vs "device" (lax.fori_loop
    chunks on the device);
  * VGG weights closed over as constants vs passed as jit arguments.
Prints ms per step (median over repeats) for each; the choice in
jaxstyle.optimize.choose_driver and jaxstyle.stylize.make_loss_fn follows it.

    python scripts/bench_driver.py --size 128 --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.objective import Objective, compute_targets, total_loss
from jaxstyle.optimize import OptimizerConfig, make_init, make_step, run
from jaxstyle.presets import get_preset
from jaxstyle.stylize import make_loss_fn, resolve_settings
from jaxstyle.weights import load_vgg19


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--optimizer", default="adam")
    a = ap.parse_args()
    params = load_vgg19()
    preset = get_preset("jcjohnson")
    objective = Objective.from_preset(preset)
    settings = resolve_settings("jcjohnson")
    rng = np.random.default_rng(0)
    content = jnp.asarray(rng.uniform(size=(a.size, a.size, 3)), jnp.float32)
    style = jnp.asarray(rng.uniform(size=(a.size, a.size, 3)), jnp.float32)
    targets = compute_targets(params, objective, content, [style])
    weights = settings.loss_weights()
    config = OptimizerConfig(name=a.optimizer, learning_rate=0.02)

    def as_argument(image, args):
        targets, weights, p = args
        return total_loss(image, p, targets, weights, objective)

    variants = {
        "constants": (make_loss_fn(params, objective), (targets, weights)),
        "arguments": (as_argument, (targets, weights, jax.device_put(params))),
    }
    print(
        f"backend {jax.default_backend()}, {a.size}px, {a.optimizer}, {a.steps} steps x {a.repeats}"
    )
    print(f"{'weights':>10} {'driver':>8} {'ms/step':>9} {'compile s':>10}")
    for name, (loss_fn, args) in variants.items():
        for driver in ("python", "device"):
            times, compile_s = [], None
            for _ in range(a.repeats):
                carry = jax.jit(make_init(loss_fn, config))(content, args)
                r = run(
                    make_step(loss_fn, config), carry, args, a.steps, driver=driver, chunk=a.steps
                )
                times.append(1e3 * r.run_seconds / a.steps)
                compile_s = r.compile_seconds if compile_s is None else compile_s
            print(f"{name:>10} {driver:>8} {statistics.median(times):9.1f} {compile_s:10.1f}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")
