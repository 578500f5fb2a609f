"""Loss primitives of neural style transfer: pure, jit- and vmap-safe.

Every function reduces over the trailing image axes and keeps leading batch
axes, so ``f(x)`` on (N, h, w, C) equals ``vmap(f)`` over N. Arguments of other
shapes are a :class:`~jaxstyle.errors.JaxstyleError` naming them, raised from the
static shapes when traced (free under jit; per example under vmap). Normalisations are
explicit keyword options; :mod:`jaxstyle.presets` names the combinations that
reproduce published defaults.

Reductions (``reduction=``): ``"sum"`` is Σ d², ``"half_sum"`` ½·Σ d² (Gatys et
al., eq. 1), ``"mean"`` the mean of d² (an MSE, as in neural-style and the
PyTorch/TensorFlow tutorials).

Two style losses: Gram matrices (:func:`style_loss`, Gatys et al.) and
nearest-neighbour feature patches (:func:`mrf_loss`, Li & Wand 2016).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from jaxstyle.errors import JaxstyleError, integer

GRAM_NORMALIZATIONS = ("none", "hw", "chw")
REDUCTIONS = ("sum", "half_sum", "mean")
STYLE_REDUCTIONS = REDUCTIONS + ("gatys",)


def _reduce(values: jax.Array, axes: tuple[int, ...], reduction: str) -> jax.Array:
    if reduction == "sum":
        return values.sum(axes)
    if reduction == "half_sum":
        return 0.5 * values.sum(axes)
    if reduction == "mean":
        return values.mean(axes)
    raise JaxstyleError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")


def _check_axes(name: str, array, axes: str) -> tuple[int, ...]:
    """``array``'s static shape (per example under vmap); a :class:`JaxstyleError`
    naming ``name`` unless it has the trailing ``axes`` ("h, w, C")."""
    shape = np.shape(array)
    if len(shape) < len(axes.split(", ")):
        raise JaxstyleError(f"{name} must be (..., {axes}), not {shape}")
    return shape


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape ``shapes`` broadcast to, or None if they do not."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


def _check_target(name: str, target, shape: tuple[int, ...], axes: int) -> None:
    """A :class:`JaxstyleError` naming ``name`` unless ``target`` has the last
    ``axes`` axes of ``shape`` ((h, w, C) or (C, C)) and broadcasts to ``shape``."""
    got, shape = np.shape(target), tuple(shape)
    if got[-axes:] != shape[-axes:] or broadcast_shape(got, shape) != shape:
        leading = f" (leading axes broadcasting to {shape})" if len(shape) > axes else ""
        raise JaxstyleError(f"{name} must be {shape[-axes:]}{leading}, not {got}")


def _check_mask(mask, shape: tuple[int, ...]) -> None:
    """A :class:`JaxstyleError` unless ``mask`` is (..., h, w) for (..., h, w, C)
    features of ``shape``, leading axes broadcasting."""
    got = np.shape(mask)
    if got[-2:] != tuple(shape[-3:-1]) or broadcast_shape(got[:-2], shape[:-3]) is None:
        raise JaxstyleError(
            f"mask must be (..., {shape[-3]}, {shape[-2]}) for features {tuple(shape)}, not {got}"
        )


def _align_mask(features, mask) -> tuple[jax.Array, jax.Array]:
    """(..., h, w, C) ``features`` and (..., h, w) ``mask`` (checked by
    :func:`_check_mask`) with leading axes of 1 added in front of the one with fewer,
    so that they broadcast without rank promotion (which a caller's
    ``jax_numpy_rank_promotion="raise"`` refuses)."""
    features, mask = jnp.asarray(features), jnp.asarray(mask)
    lead = max(features.ndim - 3, mask.ndim - 2)
    features = jnp.expand_dims(features, tuple(range(lead + 3 - features.ndim)))
    return features, jnp.expand_dims(mask, tuple(range(lead + 2 - mask.ndim)))


@jax.custom_jvp
def _gram(f: jax.Array) -> jax.Array:
    """FᵀF of (..., K, C) features: (..., C, C) float32."""
    return jnp.einsum("...kc,...kd->...cd", f, f, preferred_element_type=jnp.float32)


@_gram.defjvp
def _gram_jvp(primals, tangents):
    # d(FᵀF) = FᵀdF + (FᵀdF)ᵀ: one product, whose transpose (the gradient) is one
    # product too, F·(Ḡ + Ḡᵀ), where autodiff of the einsum makes two. Its operands
    # keep F's dtype (bfloat16 runs on the matrix units) and accumulate in float32.
    (f,), (df,) = primals, tangents
    half = jnp.einsum("...kc,...kd->...cd", f, df, preferred_element_type=f.dtype)
    half = half.astype(jnp.float32)
    return _gram(f), half + jnp.swapaxes(half, -1, -2)


@jax.custom_jvp
def _masked_gram(f: jax.Array, m: jax.Array) -> jax.Array:
    """Σ_k m_k F_kc F_kd of (..., K, C) features and (..., K) float32 weights >= 0:
    (..., C, C) float32, the Gram of the √m-weighted features."""
    return _gram(f * jnp.sqrt(m)[..., None].astype(f.dtype))


@functools.partial(_masked_gram.defjvp, symbolic_zeros=True)
def _masked_gram_jvp(primals, tangents):
    # through √m a weight of 0 has an infinite derivative, times 0: NaN. Linear in m
    # instead: Σ_k m_k (F_k dF_kᵀ + dF_k F_kᵀ) + dm_k F_k F_kᵀ, each part only when its
    # argument is differentiated, by one product in F's dtype as in _gram_jvp
    (f, m), (df, dm) = primals, tangents
    out = _masked_gram(f, m)
    dout = jnp.zeros(out.shape, out.dtype)
    if not isinstance(df, SymbolicZero):
        weighted = f * m[..., None].astype(f.dtype)
        half = jnp.einsum("...kc,...kd->...cd", weighted, df, preferred_element_type=f.dtype)
        half = half.astype(jnp.float32)
        dout = dout + half + jnp.swapaxes(half, -1, -2)
    if not isinstance(dm, SymbolicZero):
        weighted = f * dm[..., None].astype(f.dtype)
        dout = dout + jnp.einsum(
            "...kc,...kd->...cd", weighted, f, preferred_element_type=jnp.float32
        )
    return out, dout


def gram_matrix(
    features: jax.Array, *, normalize: str = "chw", mask: jax.Array | None = None
) -> jax.Array:
    """Gram matrices of feature maps: G_ij = Σ_k F_ik F_jk over positions k.

    Args:
      features: (..., h, w, C).
      normalize: ``"none"`` (Gatys et al.), ``"hw"`` divides by h·w (TensorFlow
        tutorial), ``"chw"`` by C·h·w (neural-style, PyTorch tutorial).
      mask: (..., h, w) weights of the positions in [0, 1], or None (all 1): the
        guided Gram Σ_k m_k F_ik F_jk of Gatys et al. 2017, its "hw"/"chw"
        normalisation counting Σ_k m_k positions instead of h·w.

    Returns:
      (..., C, C), accumulated in float32. Differentiable (forward and
      reverse mode; in ``mask`` too, where it is 0 as well) by one matrix product in
      ``features``' dtype, with float32 accumulation.
    """
    *_, h, w, c = _check_axes("features", features, "h, w, C")
    features = jnp.asarray(features)
    if mask is None:
        gram = _gram(features.reshape(*features.shape[:-3], h * w, c))
    else:
        _check_mask(mask, features.shape)
        features, mask = _align_mask(features, mask)
        mask = jnp.asarray(mask, jnp.float32)
        flat = features.reshape(*features.shape[:-3], h * w, c)
        gram = _masked_gram(flat, mask.reshape(*mask.shape[:-2], h * w))
    if normalize == "none":
        return gram
    # divisors as Python floats: past 2**31 an int would overflow jax's int32
    positions = float(h * w) if mask is None else mask_positions(mask)[..., None, None]
    if normalize == "hw":
        return gram / positions
    if normalize == "chw":
        return gram / (c * positions)
    raise JaxstyleError(f"normalize must be one of {GRAM_NORMALIZATIONS}, not {normalize!r}")


def mask_positions(mask: jax.Array) -> jax.Array:
    """Σ_k m_k of (..., h, w) position weights: (...) float32, at least 1e-6 (an
    empty mask divides nothing by zero)."""
    return jnp.maximum(jnp.asarray(mask, jnp.float32).sum((-2, -1)), 1e-6)


def content_loss(features: jax.Array, target: jax.Array, *, reduction: str = "mean") -> jax.Array:
    """Distance between feature maps and their target.

    Args:
      features: (..., h, w, C).
      target: (..., h, w, C) of the same h, w, C, leading axes broadcasting to
        ``features``'.
      reduction: see the module docstring.

    Returns:
      (...) one value per leading index.
    """
    shape = _check_axes("features", features, "h, w, C")
    _check_target("the content target", target, shape, 3)
    target = jnp.broadcast_to(jnp.asarray(target, jnp.float32), shape)
    diff = jnp.asarray(features, jnp.float32) - target
    return _reduce(jnp.square(diff), (-3, -2, -1), reduction)


def style_layer_loss(
    gram: jax.Array,
    target_gram: jax.Array,
    *,
    positions: int | jax.Array,
    reduction: str = "mean",
) -> jax.Array:
    """Distance between Gram matrices of one layer.

    Args:
      gram: (..., C, C) from :func:`gram_matrix`.
      target_gram: (..., C, C) of the same C, leading axes broadcasting to ``gram``'s.
      positions: h·w of the layer (M_l in Gatys et al.), or (...) Σ m_k of a mask.
      reduction: as in the module docstring, or ``"gatys"``:
        Σ(G−A)² / (4·C²·(h·w)²), the paper's E_l for un-normalised Grams.

    Returns:
      (...), float32 (as the differences are taken).
    """
    shape = _check_axes("gram", gram, "C, C")
    if shape[-2] != shape[-1]:
        raise JaxstyleError(f"gram must be (..., C, C), square, not {shape}")
    _check_target("the target Gram", target_gram, shape, 2)
    target_gram = jnp.broadcast_to(jnp.asarray(target_gram, jnp.float32), shape)
    squared = jnp.square(jnp.asarray(gram, jnp.float32) - target_gram)
    if reduction == "gatys":
        if isinstance(positions, (int, float, np.number)) and not positions > 0:
            raise JaxstyleError(f"positions (h·w of the layer) must be > 0, not {positions!r}")
        channels = shape[-1]
        # float32, not jnp's int32: h·w of a 256x256 map squared overflows it
        m = float(positions) if isinstance(positions, int) else jnp.asarray(positions, jnp.float32)
        return squared.sum((-2, -1)) / (4.0 * channels**2 * jnp.square(m))
    return _reduce(squared[..., None], (-3, -2, -1), reduction)


def style_loss(
    features: Mapping[str, jax.Array],
    target_grams: Mapping[str, jax.Array],
    *,
    layer_weights: Mapping[str, jax.Array] | None = None,
    normalize: str = "chw",
    reduction: str = "mean",
    masks: Mapping[str, jax.Array] | None = None,
) -> jax.Array | float:
    """Weighted sum over layers of :func:`style_layer_loss`.

    Args:
      features: {layer: (..., h, w, C)}.
      target_grams: {layer: (C, C)} for the same layers.
      layer_weights: {layer: scalar} (w_l) >= 0, refused otherwise where they are
        numbers (not traced); default 1 for every layer.
      normalize: Gram normalisation, see :func:`gram_matrix`.
      reduction: see :func:`style_layer_loss`.
      masks: {layer: (..., h, w)} position weights (guided Grams, see
        :func:`gram_matrix`), or None: the style is matched where they are 1.

    Returns:
      (...); 0.0 for no layers.
    """
    given = {"target_grams": target_grams, "layer_weights": layer_weights, "masks": masks}
    for what, mapping in given.items():
        missing = [name for name in features if mapping is not None and name not in mapping]
        if missing:
            raise JaxstyleError(f"{what} lack the features' layer(s) {', '.join(missing)}")
    for name, w in (layer_weights or {}).items():  # values are known only outside jit
        if not isinstance(w, jax.core.Tracer) and not np.all(np.asarray(w, np.float64) >= 0):
            raise JaxstyleError(f"layer weights must be finite and >= 0, not {name}: {w}")
    total = 0.0
    for name, f in features.items():
        mask = None if masks is None else masks[name]
        gram = gram_matrix(f, normalize=normalize, mask=mask)
        h, w = np.shape(f)[-3:-1]
        positions = h * w if mask is None else mask_positions(mask)
        loss = style_layer_loss(gram, target_grams[name], positions=positions, reduction=reduction)
        total = total + (1.0 if layer_weights is None else layer_weights[name]) * loss
    return total


SIMILARITY_CHUNK = 2**24
"""The most patch similarities :func:`mrf_loss` holds at once (64 MB of float32):
its image patches are matched in chunks of rows beyond that."""


def _check_patches(size: int, stride: int) -> None:
    """A :class:`JaxstyleError` unless patch ``size`` and ``stride`` are integers >= 1."""
    if min(integer("patch size", size), integer("patch stride", stride)) < 1:
        raise JaxstyleError(f"patch size and stride must be >= 1, not {size} and {stride}")


def extract_patches(features: jax.Array, *, size: int = 3, stride: int = 1) -> jax.Array:
    """Every ``size`` x ``size`` patch of feature maps, ``stride`` apart (no padding).

    Args:
      features: (..., h, w, C), with h and w at least ``size``.

    Returns:
      (..., P, size·size·C): P = ⌊(h−size)/stride+1⌋·⌊(w−size)/stride+1⌋ patches in
      row-major order of their top-left corners, each flattened (row, column, channel).
    """
    _check_patches(size, stride)
    *_, h, w, c = _check_axes("features", features, "h, w, C")
    features = jnp.asarray(features)
    if min(h, w) < size:
        raise JaxstyleError(
            f"features of h={h}, w={w} have no {size}x{size} patch: "
            f"h and w must be at least the patch size {size}"
        )
    rows, cols = (h - size) // stride + 1, (w - size) // stride + 1
    shifted = [
        features[
            ...,
            i : i + stride * (rows - 1) + 1 : stride,
            j : j + stride * (cols - 1) + 1 : stride,
            :,
        ]
        for i in range(size)
        for j in range(size)
    ]
    patches = jnp.stack(shifted, axis=-2)  # (..., rows, cols, size·size, C)
    return patches.reshape(*features.shape[:-3], rows * cols, size * size * c)


def _wrap_ends(x: jax.Array, n: int, axes: tuple[int, int]) -> jax.Array:
    """``x`` with its first ``n`` entries along each of ``axes`` appended at their ends."""
    pad = [(0, 0)] * x.ndim
    for axis in axes:
        pad[axis] = (0, n)
    return jnp.pad(x, pad, mode="wrap")


def mrf_loss(
    features: jax.Array,
    target_patches: jax.Array,
    *,
    patch_size: int = 3,
    stride: int = 1,
    reduction: str = "sum",
    mask: jax.Array | None = None,
    wrap: bool = False,
) -> jax.Array:
    """The MRF style loss of Li & Wand (2016, eq. 2): every patch of ``features``
    pulled towards the target patch most like it.

    Each patch Ψ_i of the features is matched to the target patch of highest
    normalised cross-correlation, NN(i) = argmax_j ⟨Ψ_i, Ψ_j⟩ / |Ψ_j| (the
    match is not differentiated), and the loss is the reduction of
    (Ψ_i − Ψ_NN(i))² over the patches and their entries.

    Args:
      features: (..., h, w, C).
      target_patches: (P', size·size·C) from :func:`extract_patches` of the
        style features (of any size; several style images' concatenated).
      patch_size, stride: of the features' patches (:func:`extract_patches`).
      reduction: see the module docstring (``"mean"``: over patches and entries).
      mask: (..., h, w) weights in [0, 1]: each patch counts with the weight at
        its centre (``"mean"`` divides by their sum); None: all 1.
      wrap: also the patches across the sides, the features (and mask) continued
        on the opposite ones (a tileable image: a patch at every ``stride``-th
        position, ⌈h/stride⌉·⌈w/stride⌉ of them).

    Returns:
      (...), float32. The similarities are products in ``features``' dtype
      with float32 accumulation, at most :data:`SIMILARITY_CHUNK` of them at a
      time; only the matched patches enter the gradient.
    """
    shape = _check_axes("features", features, "h, w, C")
    _check_patches(patch_size, stride)  # before wrap pads by patch_size - 1
    if mask is not None:
        _check_mask(mask, shape)
        features, mask = _align_mask(features, mask)
    if wrap:  # the top-left corners at every position: patch_size - 1 more rows and columns
        features = _wrap_ends(features, patch_size - 1, (-3, -2))
        mask = None if mask is None else _wrap_ends(jnp.asarray(mask), patch_size - 1, (-2, -1))
    patches = extract_patches(features, size=patch_size, stride=stride)
    depth, given = patches.shape[-1], np.shape(target_patches)
    if len(given) != 2 or given[-1] != depth:
        raise JaxstyleError(
            f"target patches must be (P', {depth}), {patch_size}x{patch_size} patches of "
            f"{features.shape[-1]} channels (extract_patches with the same size), not {given}"
        )
    if not given[0]:  # no patch to match to: each image patch's nearest is undefined
        raise JaxstyleError(f"target patches must be at least one patch, not {given}")
    targets = jnp.asarray(target_patches)
    norms = jnp.linalg.norm(targets.astype(jnp.float32), axis=-1, keepdims=True)
    unit = (targets / jnp.maximum(norms, 1e-8)).astype(patches.dtype)
    flat = jax.lax.stop_gradient(patches).reshape(-1, patches.shape[-1])

    def best(rows):  # (n, D) -> (n,) index of each row's most similar target patch
        similarity = jnp.einsum("pd,qd->pq", rows, unit, preferred_element_type=jnp.float32)
        return jnp.argmax(similarity, axis=-1)

    rows = max(1, SIMILARITY_CHUNK // unit.shape[0])
    if flat.shape[0] <= rows:
        match = best(flat)
    else:  # in chunks of rows, so the similarities never take more memory than that
        match = jax.lax.map(lambda row: best(row[None])[0], flat, batch_size=rows)
    nearest = targets.astype(jnp.float32)[match.reshape(patches.shape[:-1])]  # (..., P, D)
    squared = jnp.square(patches.astype(jnp.float32) - nearest)
    if mask is None:
        return _reduce(squared, (-2, -1), reduction)
    *_, h, w = mask.shape
    top, left = patch_size // 2, patch_size // 2
    centres = jnp.asarray(mask, jnp.float32)[
        ..., top : top + h - patch_size + 1, left : left + w - patch_size + 1, None
    ]
    weights = extract_patches(centres, size=1, stride=stride)  # (..., P, 1)
    if reduction == "mean":
        return (weights * squared).sum((-2, -1)) / (mask_positions(weights) * squared.shape[-1])
    return _reduce(weights * squared, (-2, -1), reduction)


def total_variation_loss(
    images: jax.Array, *, power: int = 2, reduction: str = "sum", wrap: bool = False
) -> jax.Array:
    """Total variation: differences of vertically and horizontally adjacent pixels.

    Args:
      images: (..., H, W, C).
      power: 2 for squared differences (neural-style), 1 for absolute
        differences (``tf.image.total_variation``).
      reduction: ``"sum"``, ``"half_sum"`` or ``"mean"`` (each direction's
        mean, summed; 0 for a direction of no differences, across a side of 1 px)
        of |d|**power.
      wrap: also the differences across the sides, last row to first and last
        column to first (a tileable image: H·W of each direction, not (H-1)·W).

    Returns:
      (...), float32: the differences are taken in float32 whatever ``images``'
      dtype (integer pixels would wrap around, bfloat16 sums lose digits).
    """
    _check_axes("images", images, "H, W, C")
    images = jnp.asarray(images, jnp.float32)
    if wrap:
        dy = jnp.roll(images, -1, axis=-3) - images
        dx = jnp.roll(images, -1, axis=-2) - images
    else:
        dy = images[..., 1:, :, :] - images[..., :-1, :, :]
        dx = images[..., :, 1:, :] - images[..., :, :-1, :]
    if power == 1:
        dy, dx = jnp.abs(dy), jnp.abs(dx)
    elif power == 2:
        dy, dx = jnp.square(dy), jnp.square(dx)
    else:
        raise JaxstyleError(f"power must be 1 or 2, not {power!r}")
    axes = (-3, -2, -1)

    def reduced(d):  # no differences (a side of 1 px) add 0, not the NaN mean of none
        empty = 0 in d.shape[-3:]
        return _reduce(jnp.zeros((*d.shape[:-3], 1, 1, 1)) if empty else d, axes, reduction)

    return reduced(dy) + reduced(dx)
