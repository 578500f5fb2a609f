"""XLA compiler options A/B: jaxstyle's optimisation step compiled with each option set,
timed alternately in one process (so machine noise hits every set alike).

Each set is ``default`` (XLA's own options), ``jaxstyle`` (those jaxstyle compiles
with, :mod:`jaxstyle.compiler`) or ``KEY=VALUE[,KEY=VALUE...]`` (e.g.
``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT``).
Prints each set's compile time, the median ms per image-step over the repeats,
and how far its first step's image is from the first set's; ``--profile N`` then
traces each set's steps with ``jax.profiler`` and prints the N ops that took the
most device time (on a CPU, thread time), per step.

    python scripts/bench_xla_options.py --size 256
    python scripts/bench_xla_options.py --size 128 --batch 8
    python scripts/bench_xla_options.py --size 256 --conv-algorithm direct
    python scripts/bench_xla_options.py default --size 512 --batch 8 \
        --compute-dtype bfloat16 --profile 20
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def option_set(text: str) -> dict | None:
    from jaxstyle.compiler import compiler_options

    if text == "default":
        return None
    if text == "jaxstyle":
        return compiler_options()
    return {key: _value(value) for key, value in (item.split("=", 1) for item in text.split(","))}


def _value(text: str) -> bool | int | str:
    """An option's value as XLA's options want it: a bool, an int or a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if text.lstrip("-").isdigit() else text


def op_times(trace_dir: str) -> tuple[collections.Counter, collections.Counter, dict]:
    """Nanoseconds per HLO op (numbered suffixes merged) and per kernel in a
    ``jax.profiler`` trace, and per trace line: on a GPU the kernels of the device's
    stream lines (ops by the kernels' ``hlo_op``), on a CPU the executor's threads
    (no kernels)."""
    import jax

    (path,) = Path(trace_dir).rglob("*.xplane.pb")
    profile = jax.profiler.ProfileData.from_file(str(path))  # owns the planes: keep it
    planes = list(profile.planes)
    device = [p for p in planes if p.name.startswith("/device:")]
    ops, kernels, lines = collections.Counter(), collections.Counter(), collections.Counter()
    for plane in device or [p for p in planes if p.name == "/host:CPU"]:
        streams = [line for line in plane.lines if line.name.startswith("Stream")]
        for line in streams or plane.lines:
            for event in line.events:
                op = dict(event.stats).get("hlo_op")
                if op is not None:
                    ops[re.sub(r"\.\d+$", "", str(op))] += event.duration_ns
                    lines[f"{plane.name} {line.name}"] += event.duration_ns
                    if streams:
                        kernels[event.name] += event.duration_ns
    return ops, kernels, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="*", default=["default", "jaxstyle"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1, help="images, vmapped (step as in sweeps)")
    ap.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    ap.add_argument("--conv-algorithm", choices=("auto", "direct", "winograd"), default="auto")
    ap.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--preset", default="jcjohnson")
    ap.add_argument("--steps", type=int, default=4, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N ops")
    ap.add_argument("--content", type=Path, default=IMAGES / "tubingen.jpg")
    ap.add_argument("--style", type=Path, default=IMAGES / "starry_night.jpg")
    a = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    from bench import Config, make_inputs

    from jaxstyle.objective import LossArgs, make_loss_fn
    from jaxstyle.optimize import make_init, make_step
    from jaxstyle.stylize import prepare_targets
    from jaxstyle.vgg import prepare_weights
    from jaxstyle.weights import load_vgg19

    params = load_vgg19()
    inputs = make_inputs(params, Config(a.size, a.batch, a.optimizer), a)
    s, objective, content = inputs.settings, inputs.objective, inputs.content
    config = s.optimizer_config(inputs.preset)
    targets = prepare_targets(params, objective, content, [inputs.style], s)
    args = LossArgs(
        prepare_weights(params, conv_algorithm=objective.conv_algorithm), targets, s.loss_weights()
    )
    loss_fn = make_loss_fn(objective)
    carry = make_init(loss_fn, config)(jnp.asarray(content), args)
    step = make_step(loss_fn, config)
    if a.batch > 1:
        carry = jax.tree.map(lambda x: jnp.stack([x] * a.batch), carry)
        step = jax.vmap(step, in_axes=(0, None))
    h, w = content.shape[:2]
    print(
        f"{jax.default_backend()}: {a.optimizer} step, {h}x{w} px, batch {a.batch}, "
        f"{a.compute_dtype} {objective.conv_algorithm} convolutions; "
        f"{a.steps} steps x {a.repeats} repeats"
    )

    sets, compiled = [], []
    for name in a.sets:
        options = option_set(name)
        t = time.perf_counter()
        try:
            program = jax.jit(step, compiler_options=options).lower(carry, args).compile()
        except Exception as e:  # an option this XLA does not know: report it, go on
            print(f"  {name}: rejected: {str(e).splitlines()[0][:200]}", flush=True)
            continue
        sets.append((name, options))
        compiled.append(program)
        print(f"  {name}: {options}, compiled in {time.perf_counter() - t:.1f} s", flush=True)
    first = [np.asarray(c(carry, args)[0].image) for c in compiled]

    def run_steps(compiled_step):
        state = carry
        for _ in range(a.steps):
            state, _record = compiled_step(state, args)
        return jax.block_until_ready(state)

    times = [[] for _ in compiled]
    for _ in range(a.repeats):
        for i, c in enumerate(compiled):
            t = time.perf_counter()
            run_steps(c)
            times[i].append((time.perf_counter() - t) / a.steps / a.batch * 1e3)
    for (name, _), ts, image in zip(sets, times, first, strict=True):
        print(
            f"{name:>10}: {np.median(ts):#7.3g} ms per image-step (runs: "
            f"{', '.join(f'{t:#.3g}' for t in ts)}); first step's image differs from "
            f"{sets[0][0]}'s by {np.abs(image - first[0]).max():.1e} at most"
        )
    if not a.profile:
        return
    for (name, _), c in zip(sets, compiled, strict=True):
        with tempfile.TemporaryDirectory() as trace:
            with jax.profiler.trace(trace):
                run_steps(c)
            ops, kernels, lines = op_times(trace)
        print(f"{name}: {sum(ops.values()) / a.steps / 1e6:.3f} ms of op time per step")
        for what, totals in (("line", lines), ("op", ops), ("kernel", kernels)):
            for key, ns in totals.most_common(a.profile):
                print(f"  {what:>6} {ns / a.steps / 1e6:8.3f} ms  {key}")


if __name__ == "__main__":
    main()
