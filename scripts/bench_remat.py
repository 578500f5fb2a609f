"""Rematerialisation of VGG19's blocks (``jax.checkpoint``) against none: memory and time.

``jaxstyle.vgg.features(..., remat=True)`` makes each VGG19 block a
``jax.checkpoint``, so that the image gradient keeps only the blocks' inputs and
the loss's layers and recomputes the rest a block at a time. The lever is kept
in the product only if it measurably saves memory; this script measures it on
whatever backend runs it. For each size it compiles the value and image
gradient of an objective on the jaxstyle preset's layers (squared error of the
relu4_2 features and of the Grams of relu1_1..relu5_1, the image and the targets'
image uniform noise), with and without remat, and prints XLA's memory analysis of
the compiled program (temp MiB: the activations and the gradient's buffers), the
median ms of ``--repeats`` calls (the two variants alternated), and the largest
gradient difference relative to the gradient's largest entry.

    python scripts/bench_remat.py --sizes 256,512 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512", help="square image sides, comma list")
    ap.add_argument("--batch", type=int, default=1, help="images per call")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per variant")
    ap.add_argument("--compute-dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--weights", default=None, help="weight set directory (default: fetched)")
    a = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxstyle
    from jaxstyle.presets import get_preset
    from jaxstyle.vgg import choose_conv_algorithm, features, prepare_weights

    preset = get_preset("jaxstyle")
    layers = tuple(sorted({*preset.content_layers, *preset.style_layers}))
    vgg = prepare_weights(jaxstyle.load_vgg19(a.weights))
    print(f"backend {jax.default_backend()}, {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print("size  remat  temp MiB  ms/call  max |grad diff| / max |grad|")
    for size in map(int, a.sizes.split(",")):
        algorithm = choose_conv_algorithm("auto", a.compute_dtype, size)
        key = jax.random.key(size)
        image = jax.random.uniform(key, (a.batch, size, size, 3))
        targets = features(vgg, jax.random.uniform(key, (1, size, size, 3)), layers, "max")
        grams = {n: jaxstyle.gram_matrix(targets[n]) for n in preset.style_layers}

        def loss(image, remat, algorithm=algorithm, targets=targets, grams=grams):
            f = features(vgg, image, layers, "max", a.compute_dtype, algorithm, remat=remat)
            content = sum(
                jnp.mean((f[n].astype(jnp.float32) - targets[n]) ** 2)
                for n in preset.content_layers
            )
            style = sum(
                jnp.sum((jaxstyle.gram_matrix(f[n]) - grams[n]) ** 2) for n in preset.style_layers
            )
            return content + 100.0 * style

        compiled, grads, times = {}, {}, {False: [], True: []}
        for remat in (False, True):
            step = jax.jit(jax.value_and_grad(loss), static_argnums=1)
            compiled[remat] = step.lower(image, remat).compile()
            jax.block_until_ready(compiled[remat](image))
        for _ in range(a.repeats):  # alternated, so that drift on the machine hits both
            for remat in (False, True):
                t0 = time.perf_counter()
                _, grads[remat] = jax.block_until_ready(compiled[remat](image))
                times[remat].append((time.perf_counter() - t0) * 1e3)
        g0, g1 = (np.asarray(grads[r], np.float64) for r in (False, True))
        for remat in (False, True):
            temp = compiled[remat].memory_analysis().temp_size_in_bytes / 2**20
            diff = f"{np.max(np.abs(g1 - g0)) / np.max(np.abs(g0)):.1e}" if remat else ""
            ms = statistics.median(times[remat])
            print(f"{size:4d}  {remat!s:5}  {temp:8.1f}  {ms:7.1f}  {diff}")


if __name__ == "__main__":
    main()
