"""One image's rows split over several devices (spatial partitioning), for pictures
too large for one device's memory.

The image (H, W, 3) and every image-shaped leaf of the optimiser's state (Adam's
moments; L-BFGS's iterate, gradient and (m, H, W, 3) memory) are sharded by rows
over a mesh axis :data:`ROWS`; the VGG weights and the targets are replicated. XLA's
SPMD partitioner then splits every convolution's rows, exchanging the halo rows a
3x3 convolution needs with the neighbouring devices, and sums the Gram matrices and
losses across them: the same optimisation, each device holding 1/n of the
activations. With one device nothing changes. A sweep's or batch's cells take a
(cells, rows) mesh: :func:`image_layout` with a cell axis
(:func:`jaxstyle.cells.cell_mesh`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.errors import JaxstyleError

ROWS = "rows"
"""The mesh axis the image's rows are split over."""


def image_layout(mesh: Mesh, shape: tuple[int, ...], cells: str | None = None) -> Callable:
    """``sharding(leaf) -> NamedSharding`` over ``mesh``: a leaf whose last three axes
    are the image's (H, W, 3) ``shape`` is split by rows over the mesh's :data:`ROWS`
    axis (if it has one). With ``cells`` (a mesh axis), every leaf has a leading cell
    axis, sharded over it (a sweep's or batch's cells); otherwise the other leaves are
    replicated."""
    shape = tuple(shape)
    lead = (cells,) if cells else ()
    split = ROWS in mesh.axis_names and len(shape) == 3
    if split:
        check_rows(shape[0], mesh.shape[ROWS])

    def sharding(leaf) -> NamedSharding:
        leaf_shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
        if split and len(leaf_shape) >= 3 + len(lead) and leaf_shape[-3:] == shape:
            middle = [None] * (len(leaf_shape) - 3 - len(lead))
            return NamedSharding(mesh, P(*lead, *middle, ROWS, None, None))
        return NamedSharding(mesh, P(*lead))

    return sharding


def check_rows(height: int, rows: int) -> None:
    """Refuse to split an image of ``height`` rows over ``rows`` devices unless each
    gets as many (jax shards an array's axis only into equal parts)."""
    if height % rows:
        raise JaxstyleError(
            f"cannot split the image's {height} rows evenly over {rows} devices: give a "
            f"--size (or shape) whose height is a multiple of {rows}, or split over fewer"
        )


def row_sharding(shape: tuple[int, ...], devices: Sequence[jax.Device]) -> Callable:
    """``sharding(leaf) -> NamedSharding`` over ``devices``: a leaf whose last three
    axes are the image's (H, W, 3) ``shape`` split by rows, any other replicated."""
    return image_layout(Mesh(np.array(list(devices)), (ROWS,)), shape)


def rows_per_image(split_image: bool | int, devices: int) -> int:
    """How many devices each image's rows are split over, of ``devices`` (local)
    devices: ``True`` all of them, ``False`` (or 1) none, an integer that many."""
    if split_image is True:
        return devices
    if split_image is False or split_image is None:
        return 1
    if not isinstance(split_image, Integral) or split_image < 1:
        raise JaxstyleError(f"split each image over 1 or more devices, not {split_image!r}")
    if split_image > devices:
        there = f"there {'is' if devices == 1 else 'are'} {devices}"
        raise JaxstyleError(f"cannot split an image over {split_image} devices: {there}")
    return int(split_image)


def check_devices(devices: Sequence[Any]) -> list[jax.Device]:
    """``devices`` as a list, refused unless each is a ``jax.Device`` (``jax.devices()``),
    there is one at least, and none is named twice."""
    if isinstance(devices, (str, bytes)) or not all(isinstance(d, jax.Device) for d in devices):
        raise JaxstyleError(f"devices must be jax.Device objects (jax.devices()), not {devices!r}")
    devices = list(devices)
    if not devices:
        raise JaxstyleError("devices is empty: name one device at least, or None for the default")
    if len(set(devices)) < len(devices):
        raise JaxstyleError(f"devices names a device twice: {devices}")
    return devices


def constrain(tree: Any, sharding: Callable) -> Any:
    """Inside a traced function: each leaf of ``tree`` laid out as ``sharding(leaf)``
    (:func:`image_layout`) says."""
    return jax.tree.map(lambda v: jax.lax.with_sharding_constraint(v, sharding(v)), tree)


def keep_split(init: Callable, step: Callable, sharding: Callable) -> tuple[Callable, Callable]:
    """``init(image, args) -> carry`` and ``step(carry, args) -> (carry, record)``
    whose carries are laid out by ``sharding`` (:func:`row_sharding`), so that a
    step's output carry is laid out as its input was."""

    def split_init(image, args):
        return constrain(init(image, args), sharding)

    def split_step(carry, args):
        carry, record = step(carry, args)
        return constrain(carry, sharding), record

    return split_init, split_step


def split_rows(
    x0: jax.Array, args: Any, init: Callable, step: Callable, devices: Sequence[jax.Device]
) -> tuple[jax.Array, Any, Callable, Callable]:
    """(x0, args, init, step) for a run whose (H, W, 3) image is split by rows over
    ``devices``: x0 placed by rows, ``args`` replicated, init and step as
    :func:`keep_split` makes them."""
    sharding = row_sharding(np.shape(x0), devices)
    x0, args = jax.device_put(x0, sharding(x0)), jax.device_put(args, sharding(None))
    return x0, args, *keep_split(init, step, sharding)
