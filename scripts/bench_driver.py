"""Measure the loop driver and weight-passing choices on this backend.

Compares, for the same objective (jcjohnson preset, real VGG19):
  * driver "python" (Python loop over a jitted step) vs "device" (lax.fori_loop
    chunks on the device);
  * VGG weights closed over as constants, passed as jit arguments, and passed
    as arguments with their transposed kernels precomputed
    (``jaxstyle.vgg.prepare_weights``, what jaxstyle does).
Prints ms per step (median over repeats, the variants interleaved), compile
seconds and the size of the serialized step executable (what the persistent
compilation cache stores and a warm start loads).

    python scripts/bench_driver.py --size 128 --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import serialize_executable

from jaxstyle.compiler import jit
from jaxstyle.objective import LossArgs, Objective, compute_targets, make_loss_fn, total_loss
from jaxstyle.optimize import OptimizerConfig, make_init, make_step, run
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.vgg import prepare_weights
from jaxstyle.weights import load_vgg19


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--drivers", default="python,device", help="comma-separated")
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

    def as_constants(image, args):
        return total_loss(image, params, args.targets, args.weights, objective)

    variants = {
        "constants": (as_constants, LossArgs(None, targets, weights)),
        "arguments": (make_loss_fn(objective), LossArgs(jax.device_put(params), targets, weights)),
        "args+prepared": (
            make_loss_fn(objective),
            LossArgs(
                prepare_weights(params, conv_algorithm=objective.conv_algorithm), targets, weights
            ),
        ),
    }
    print(
        f"backend {jax.default_backend()}, {a.size}px, {a.optimizer}, {a.steps} steps x {a.repeats}"
    )
    times = {(name, driver): [] for name in variants for driver in a.drivers.split(",")}
    compile_s, exe_mb = {}, {}
    for _ in range(a.repeats):
        for name, driver in times:
            loss_fn, args = variants[name]
            carry = jit(make_init(loss_fn, config))(content, args)
            step = make_step(loss_fn, config)
            if name not in exe_mb:
                t = time.perf_counter()
                compiled = jit(step, donate_argnums=0).lower(carry, args).compile()
                compile_s[name] = time.perf_counter() - t
                exe_mb[name] = len(serialize_executable.serialize(compiled)[0]) / 1e6
            r = run(step, carry, args, a.steps, driver=driver, chunk=a.steps)
            times[name, driver].append(1e3 * r.run_seconds / a.steps)
    print(f"{'weights':>16} {'driver':>8} {'ms/step':>9} {'compile s':>10} {'step MB':>8}")
    for (name, driver), ms in times.items():
        print(
            f"{name:>16} {driver:>8} {statistics.median(ms):9.1f} "
            f"{compile_s[name]:10.1f} {exe_mb[name]:8.1f}"
        )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")
