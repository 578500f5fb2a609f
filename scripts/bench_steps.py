"""Time N optimisation steps of one ``jaxstyle.stylize`` call, compilation excluded.

The user's own path (images loaded and resized, targets, the loop driver) for
one image, per loop driver and compute dtype: issue 4's "500 Adam steps on one
512 px image" figure. Each variant runs once to compile, then ``--repeats``
timed calls; the best counts. Reports the optimisation seconds (the steps
alone, as ``result.timings["optimize"]``), ms/step, GFLOP/s from the analytic
count (``jaxstyle.architecture.forward_macs``, 4 MACs-worth of FLOPs per Adam
step, see scripts/bench.py) and that rate as a fraction of the dense peak
(GPU, from bench.py's table) or of the measured matmul rate (CPU). The final
image's losses are given twice: as the run measured them (in its compute
dtype) and under the float32 objective, the one that compares across dtypes.

    python scripts/bench_steps.py --size 512 --steps 500 --drivers python,device \\
        --compute-dtypes float32,bfloat16 --content C.jpg --style S.jpg
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from bench import gpu_peak_gflops, measure_matmul_gflops

import jaxstyle
from jaxstyle import examples
from jaxstyle.architecture import deepest, forward_macs
from jaxstyle.estimate import flops_per_step
from jaxstyle.images import load_image
from jaxstyle.inputs import prepare_images
from jaxstyle.objective import compute_targets
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings


def float32_losses(weights, content, style, preset: str, size: int):
    """``losses(image)``: the weighted loss terms of an image of the run under the
    float32 objective (targets computed once)."""
    settings = resolve_settings(preset, size=size, compute_dtype="float32")
    objective = settings.objective(get_preset(preset))
    content, styles, _ = prepare_images(content, style, settings)
    targets = compute_targets(weights, objective, jnp.asarray(content), styles)
    terms = jax.jit(
        lambda x: jaxstyle.loss_terms(x, weights, targets, settings.loss_weights(), objective)
    )
    return lambda image: {k: float(v) for k, v in terms(jnp.asarray(image)).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--preset", default="jcjohnson")
    ap.add_argument("--drivers", default="auto", help="comma-separated: auto,python,device")
    ap.add_argument("--compute-dtypes", default="float32", help="comma-separated")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--content", help="content image (default: the built-in example photo)")
    ap.add_argument("--style", help="style image (default: the built-in example painting)")
    a = ap.parse_args()
    weights = jaxstyle.load_vgg19()
    content = load_image(a.content) if a.content else examples.example_content()
    style = load_image(a.style) if a.style else examples.example_style()
    device = jax.devices()[0]
    print(f"jax {jax.__version__} {jax.default_backend()} ({device.device_kind}), "
          f"{a.preset}, adam, {a.steps} steps, best of {a.repeats}", flush=True)  # fmt: skip
    losses32 = float32_losses(weights, content, style, a.preset, a.size)
    rows = []
    for dtype in a.compute_dtypes.split(","):
        if jax.default_backend() == "gpu":
            peak, source = gpu_peak_gflops(device.device_kind, dtype) or (float("nan"), "?")
        else:
            peak, source = measure_matmul_gflops(), "numpy float32 matmul"
        for driver in a.drivers.split(","):

            def once(driver=driver, dtype=dtype):
                return jaxstyle.stylize(
                    content, style, preset=a.preset, weights=weights, size=a.size,
                    steps=a.steps, optimizer="adam", compute_dtype=dtype, driver=driver,
                )  # fmt: skip

            t = time.perf_counter()
            first = once()
            first_call = time.perf_counter() - t
            best = min((once() for _ in range(a.repeats)), key=lambda r: r.timings["optimize"])
            h, w = best.image.shape[:2]
            macs = forward_macs(h, w, deepest(best.settings.objective(get_preset(a.preset)).layers))
            seconds = best.timings["optimize"]
            gflops = flops_per_step(macs, 1.0, 0.0) * a.steps / seconds / 1e9
            rows.append((dtype, driver, w, h, seconds, 1e3 * seconds / a.steps, gflops,
                         100 * gflops / peak, first_call, first.timings["compile"],
                         best.final, losses32(best.image)))  # fmt: skip
            print(f"  {dtype} {driver}: {seconds:.3f} s for {a.steps} steps "
                  f"(first call {first_call:.1f} s, compile {first.timings['compile']:.1f} s); "
                  f"peak reference {peak:.0f} GFLOP/s ({source})", flush=True)  # fmt: skip
    head = ("dtype", 9), ("driver", 7), ("image", 9), ("steps s", 8), ("ms/step", 8), \
        ("GFLOP/s", 9), ("% peak", 7), ("1st call s", 10), ("compile s", 9)  # fmt: skip
    print(" ".join(f"{name:>{width}}" for name, width in head)
          + "  final losses: as measured by the run | under the float32 objective")  # fmt: skip
    for dtype, driver, w, h, s, ms, gf, pct, first, comp, losses, as32 in rows:
        own = ", ".join(f"{k} {float(v):.4g}" for k, v in losses.items())
        f32 = ", ".join(f"{k} {as32[k]:.4g}" for k in ("content", "style", "tv"))
        print(f"{dtype:>9} {driver:>7} {f'{w}x{h}':>9} {s:8.3f} {ms:8.2f} {gf:9.0f} "
              f"{pct:7.1f} {first:10.1f} {comp:9.1f}  {own} | total "
              f"{sum(as32.values()):.4g}, {f32}")  # fmt: skip


if __name__ == "__main__":
    main()
