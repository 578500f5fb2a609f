"""A run's targets kept in the disk cache, so a rerun with the same images skips them.

The targets (:class:`~jaxstyle.objective.Targets`: content features and blended
style Grams) follow from the weights, the images, the objective (layers,
pooling, Gram normalisation, compute dtype, convolution algorithm), the style
blend and the environment the programs run in. An entry is keyed by all of
them, the weights and images by their bytes (:func:`jaxstyle.weights.fingerprint`)
and the environment as :func:`jaxstyle.executables.environment_digest` keys
compiled programs, so a hit holds exactly what computing them would give.
Entries are ``<key>.jaxstyle-targets`` (NumPy ``.npz``, float32) in
:mod:`jaxstyle.disk_cache`'s directory; nothing is cached while it is disabled.

Computing the targets is two VGG19 forward passes (a 256 px run on a 2-core CPU:
about 0.6 s, and the loading of their program); a warm rerun reads 4 MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import jax
import numpy as np

from jaxstyle import disk_cache, executables
from jaxstyle.objective import Objective, Targets
from jaxstyle.weights import VGG19Weights, fingerprint


def key(
    weights: VGG19Weights,
    objective: Objective,
    content: np.ndarray | None,
    styles: Sequence[np.ndarray],
    blend: Sequence[float] | str | None,
    content_shape: tuple[int, int],
) -> str | None:
    """The entry key of the targets of these inputs (images (H, W, 3) float32 in
    [0, 1], as :func:`jaxstyle.objective.compute_targets` takes them; ``blend``
    its weights, None, or ``"separate"`` for unblended Grams); None where
    nothing is cached (:func:`jaxstyle.executables.caching`)."""
    if not executables.caching():  # before the weights' digest: 0.06 s spared
        return None
    images = [] if content is None else [content]
    digest = hashlib.sha256()
    for image in [*images, *styles]:
        array = np.ascontiguousarray(image)
        digest.update(f"{array.dtype} {array.shape}".encode())
        digest.update(array.data)
    blend = blend if blend is None or isinstance(blend, str) else tuple(map(float, blend))
    parts = (content is None, digest.hexdigest(), len(styles), blend, content_shape)
    return executables.environment_digest("targets 2", fingerprint(weights), objective, parts)


def load(key: str | None) -> Targets | None:
    """The targets stored under ``key``, on the default device; None if there are none
    (or they are unreadable: computed anew)."""
    path = None if key is None else disk_cache.entry(key, "targets")
    parts = None if path is None else disk_cache.read_arrays(path)
    if parts is None:
        return None
    return jax.device_put(Targets(content=parts.get("content", {}), style=parts.get("style", {})))


def store(key: str | None, targets: Targets) -> None:
    """Keep ``targets`` under ``key`` (nothing for None)."""
    path = None if key is None else disk_cache.entry(key, "targets")
    if path is not None:
        disk_cache.write_arrays(path, {"content": targets.content, "style": targets.style})
