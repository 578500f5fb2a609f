"""The style-transfer objective J(x) = α·content + β·Σ_l w_l·style_l + γ·TV.

Three pieces, split by how they vary:
  * :class:`Objective` — static settings (layers, normalisations): they shape
    the compiled program.
  * :class:`LossWeights` — α, β, γ and the per-layer w_l as arrays: a pytree,
    so a grid of them can be vmapped through one compiled program.
  * :class:`Targets` — content features and style Grams, computed once per run.

:func:`make_loss_fn` puts them together as the optimisers' loss function,
``loss_fn(image, LossArgs(vgg, targets, weights))``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle import losses
from jaxstyle.architecture import LAYER_INDEX, deepest, min_side
from jaxstyle.compiler import jit
from jaxstyle.errors import JaxstyleError, boolean, integer
from jaxstyle.executables import keyed
from jaxstyle.images import check_image
from jaxstyle.presets import Preset
from jaxstyle.vgg import (
    POOLINGS,
    WinogradKernels,
    check_compute_dtype,
    check_layers,
    choose_conv_algorithm,
    features,
    layer_names,
    winograd_kernels,
)
from jaxstyle.weights import VGG19Weights, check_weight_set

STYLE_LOSSES = ("gram", "mrf")
"""Gram matrices (Gatys et al.) or nearest-neighbour feature patches (Li & Wand)."""

CHOICES = {
    "pooling": POOLINGS,
    "style_loss": STYLE_LOSSES,
    "gram_normalize": losses.GRAM_NORMALIZATIONS,
    "content_reduction": losses.REDUCTIONS,
    "style_reduction": losses.STYLE_REDUCTIONS,
    "tv_power": (1, 2),
    "tv_reduction": losses.REDUCTIONS,
}
"""The values each of these :class:`Objective` settings may take."""


@dataclasses.dataclass(frozen=True)
class Objective:
    """Static definition of the loss (hashable; a jit static argument).

    ``compute_dtype`` (``"float32"`` or ``"bfloat16"``) is the dtype of the VGG19
    convolutions and of the Grams' products (accumulated in float32); the
    losses, the image and the optimiser stay float32.
    ``conv_algorithm`` is how blocks 3-5 convolve: "direct", "winograd", or
    "auto", resolved on creation by :func:`jaxstyle.vgg.choose_conv_algorithm`
    (an objective has no image size, so "auto" is the choice for large images).
    ``style_loss`` is ``"gram"`` (Gatys et al.: :func:`jaxstyle.losses.style_loss`)
    or ``"mrf"`` (Li & Wand: :func:`jaxstyle.losses.mrf_loss`, every
    ``mrf_patch_size`` patch of the image pulled to the nearest of the styles'
    patches, taken ``mrf_stride`` apart).
    ``batch`` is how many images ``vmap`` runs through VGG19 at once (on one
    device), each loss evaluation seeing one: Winograd picks its tiles by the
    whole (:func:`jaxstyle.vgg.winograd_tile`). Set by
    :func:`jaxstyle.batching.shared_loss_fn` for a sweep's or batch's cells.
    ``tileable``: the image is optimised as a tile, its sides wrapping around to the
    opposite ones in VGG19's convolutions and in the TV loss, so that copies of it
    side by side meet without a seam. The targets are taken the same way (with
    zero-padded ones, whose borders a tile has none of, a 96 px texture's style loss
    ended 7x higher after 100 L-BFGS steps).
    """

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    pooling: str = "max"
    gram_normalize: str = "chw"
    content_reduction: str = "mean"
    style_reduction: str = "mean"
    tv_power: int = 2
    tv_reduction: str = "sum"
    tv_pixel_scale: float = 1.0
    style_loss: str = "gram"
    mrf_patch_size: int = 3
    mrf_stride: int = 1
    compute_dtype: str = "float32"
    conv_algorithm: str = "auto"
    batch: int = 1
    tileable: bool = False

    def __post_init__(self):
        for name in ("content_layers", "style_layers"):  # tuples: hashable
            layers = layer_names(getattr(self, name), name)
            twice = sorted({layer for layer in layers if layers.count(layer) > 1})
            if twice:  # its loss counted twice, and its weight given twice
                raise JaxstyleError(f"{name.replace('_', ' ')} name {', '.join(twice)} twice")
            object.__setattr__(self, name, layers)
        check_layers(self.content_layers + self.style_layers)
        check_compute_dtype(self.compute_dtype)
        algorithm = choose_conv_algorithm(self.conv_algorithm, self.compute_dtype)
        object.__setattr__(self, "conv_algorithm", algorithm)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise JaxstyleError(
                    f"{name.replace('_', ' ')} must be one of {', '.join(map(str, allowed))}, "
                    f"not {getattr(self, name)!r}"
                )
        if self.style_loss == "mrf" and self.style_reduction not in losses.REDUCTIONS:
            raise JaxstyleError(
                f"an MRF style loss reduces by {', '.join(losses.REDUCTIONS)}, "
                f"not {self.style_reduction!r}"
            )
        mrf = integer("MRF patch size", self.mrf_patch_size), integer("MRF stride", self.mrf_stride)
        if min(mrf) < 1:
            raise JaxstyleError("MRF patch size and stride must be >= 1")
        if integer("batch", self.batch) < 1:
            raise JaxstyleError(f"batch must be >= 1, not {self.batch}")
        finite_float32("TV pixel scale", self.tv_pixel_scale)
        object.__setattr__(self, "tileable", boolean("tileable", self.tileable))

    @classmethod
    def from_preset(cls, preset: Preset, **overrides) -> Objective:
        """The preset's objective, with any field replaced by a non-None override."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {name: getattr(preset, name) for name in fields if hasattr(preset, name)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the objective reads, in network order."""
        layers = set(self.content_layers + self.style_layers)
        return tuple(sorted(layers, key=LAYER_INDEX.__getitem__))

    def winograd_kernels(
        self,
        shape: tuple[int, int],
        style_shapes: Iterable[tuple[int, int]] = (),
        cells: int | None = None,
    ) -> WinogradKernels | None:
        """The Winograd kernels (:func:`jaxstyle.vgg.winograd_kernels`) a run reads,
        for :func:`jaxstyle.vgg.prepare_weights`: its (H, W) images ``cells`` at
        once (default ``batch``), and its targets' images (content of ``shape``,
        styles of ``style_shapes``) ``batch`` at once. None unless Winograd."""
        if self.conv_algorithm != "winograd":
            return None
        last = deepest(self.layers)
        runs = [(shape, cells or self.batch), (shape, self.batch)]
        runs += [(tuple(s), self.batch) for s in style_shapes]
        return frozenset().union(*(winograd_kernels(s, last, n) for s, n in runs))


def check_objective(objective) -> None:
    """A :class:`JaxstyleError` unless ``objective`` is an :class:`Objective` (a
    :class:`~jaxstyle.presets.Preset`'s fields are not all of an objective's)."""
    if not isinstance(objective, Objective):
        hint = " (Objective.from_preset(preset))" if isinstance(objective, Preset) else ""
        raise JaxstyleError(
            f"the objective must be an Objective{hint}, not {type(objective).__name__}"
        )


FLOAT32_MAX = float(np.finfo(np.float32).max)


def finite_float32(what: str, value, *, ndim: int = 0) -> np.ndarray:
    """``value`` as a float32 array of ``ndim`` dimensions, each number finite, >= 0 and
    within float32's range; a :class:`JaxstyleError` naming ``what`` otherwise."""
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        kind = "a number" if ndim == 0 else "numbers"
        raise JaxstyleError(f"{what} must be {kind}, not {value!r}") from None
    if array.ndim != ndim:
        shape = "one number" if ndim == 0 else "a list of numbers"
        hint = " (jaxstyle.sweep takes a list of values)" if ndim == 0 and array.ndim else ""
        raise JaxstyleError(f"{what} must be {shape}, not {value!r}{hint}")
    if not (np.all(np.isfinite(array)) and np.all(array >= 0)):
        raise JaxstyleError(f"{what} must be finite and >= 0")
    if np.any(array > FLOAT32_MAX):
        raise JaxstyleError(f"{what} must be at most {FLOAT32_MAX:.3g} (float32)")
    return array.astype(np.float32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Sweepable loss weights, each a float32 array: from numbers by :meth:`create`
    (checked on the host), in traced code ``LossWeights(content=..., ...)`` of arrays.

    Attributes:
      content: () α. style: () β. tv: () γ.
      style_layers: (L,) w_l, in the order of ``Objective.style_layers``.
    """

    content: jax.Array
    style: jax.Array
    tv: jax.Array
    style_layers: jax.Array

    @classmethod
    def create(cls, *, content, style, tv, style_layers) -> LossWeights:
        """Weights from numbers (``style_layers`` one per style layer); negative,
        non-finite and float32-overflowing values are refused."""
        given = dict(content=content, style=style, tv=tv, style_layers=style_layers)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(given)):
            raise JaxstyleError(
                "LossWeights.create checks numbers on the host, not traced values (inside jit, "
                "vmap or grad): there build LossWeights(content=, style=, tv=, style_layers=) "
                "directly from float32 arrays, () each and (L,) style_layers"
            )
        values = {}
        for name, value in given.items():  # checked on the host
            what = f"{name.replace('_', ' ')} weight{'s' * (name == 'style_layers')}"
            values[name] = finite_float32(what, value, ndim=1 if name == "style_layers" else 0)
        return cls(**jax.device_put(values))  # jnp.asarray would compile a program per shape


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Targets:
    """What the image is pulled towards.

    Attributes:
      content: {layer: (h, w, C)} content features.
      style: {layer: (C, C)} style Gram matrices (blended over style images),
        or {layer: (S, C, C)}: each style image's, for one mask per style; for
        an MRF style loss, {layer: (P, k·k·C)} the k x k patches of every style
        image's features (:func:`jaxstyle.losses.extract_patches`).
      style_masks: {layer: (h, w)} where the image's Grams are taken (guided
        Grams, see :func:`jaxstyle.losses.gram_matrix`), {layer: (S, h, w)}
        one region per style (each region's loss weighted by its share of the
        masks' total area), or None: everywhere.
    """

    content: dict
    style: dict
    style_masks: dict | None = None

    def with_style_mask(self, mask: ArrayLike | None, layers: Sequence[str]) -> Targets:
        """These targets with the style matched only where ``mask`` (H, W), of the
        output image's shape, is 1 (weights in [0, 1]; None: everywhere), or
        each style (``style`` Grams (S, C, C)) where its own mask of ``mask``
        (S, H, W) is, at the style ``layers``' resolutions (:func:`layer_masks`)."""
        return dataclasses.replace(
            self, style_masks=None if mask is None else layer_masks(mask, layers)
        )


def layer_masks(mask: ArrayLike, layers: Sequence[str]) -> dict[str, jax.Array]:
    """{layer: (..., h, w)} of (..., H, W) image masks at each layer's feature
    resolution: averaged over the 2x2 windows of every VGG19 pooling before it
    (VALID, as the network pools: an odd last row or column dropped)."""
    if jnp.ndim(mask) < 2:
        raise JaxstyleError(f"a style mask must be (..., H, W), not {jnp.shape(mask)}")
    layers = layer_names(layers, "style layers")
    if layers:  # known ones (an objective may have none)
        check_layers(layers)
    out = {}
    for name in layers:
        m = jnp.asarray(mask, jnp.float32)
        for _ in range(min_side(name).bit_length() - 1):  # the poolings up to the layer
            h, w = m.shape[-2] // 2, m.shape[-1] // 2
            m = m[..., : 2 * h, : 2 * w].reshape(*m.shape[:-2], h, 2, w, 2).mean((-3, -1))
        out[name] = m
    return out


def _features(params, images, layers, objective: Objective) -> dict[str, jax.Array]:
    """Activations {layer: (N, h, w, C)} of (N, H, W, 3) images, as the objective
    computes them (its pooling, compute dtype, convolution algorithm, and wrapped
    sides if tileable)."""
    o = objective
    padding = "wrap" if o.tileable else "zero"
    return features(
        params, images, layers, o.pooling, o.compute_dtype, o.conv_algorithm, o.batch,
        padding=padding,
    )  # fmt: skip


def compute_targets(
    params: VGG19Weights,
    objective: Objective,
    content: jax.Array | None,
    styles: Sequence[jax.Array],
    *,
    blend: Sequence[float] | None = None,
    separate: bool = False,
    content_shape: tuple[int, int] | None = None,
) -> Targets:
    """Content features and blended style Grams, computed once per run.

    Args:
      params: VGG19 weights.
      objective: which layers and Gram normalisation, and how VGG19 sees the
        images (its pooling, compute dtype and, for ``tileable``, wrapped sides:
        the targets of a tileable run, each image taken as a tile).
      content: (H, W, 3) RGB in [0, 1], or None for texture synthesis (then
        the content targets are zeros of ``content_shape``'s features and the
        content weight should be 0).
      styles: a list of one or more (H', W', 3) style images (sizes may differ).
      blend: weights of the style images' Grams (default equal; normalised to
        sum 1 by :func:`blend_weights`, blended by :func:`blend_grams`).
      separate: keep each style image's Grams apart, {layer: (S, C, C)}, for
        one mask per style (see :meth:`Targets.with_style_mask`) or for
        :func:`blend_grams` to blend later; no blend.
    """
    check_weight_set(params)
    check_objective(objective)
    if getattr(styles, "ndim", 4) != 4 or not len(styles):  # one array: its rows
        hint = " (one style: [style])" if getattr(styles, "ndim", 0) == 3 else ""
        raise JaxstyleError(
            "styles must be a list of one or more (H, W, 3) images, "
            f"not {getattr(styles, 'shape', styles)}{hint}"
        )
    for i, style in enumerate(styles):
        check_image(style, f"style {i}")
    if objective.style_loss == "mrf" and (separate or blend is not None):
        raise JaxstyleError(
            "an MRF style loss matches patches of all the style images together: "
            "no style blend or mask per style"
        )
    if separate and blend is not None:  # it would be ignored
        raise JaxstyleError(
            "separate=True keeps each style image's Grams apart and takes no blend "
            "(blend them later: jaxstyle.objective.blend_grams)"
        )
    weights = blend_weights(blend, len(styles))  # refused before any VGG19 pass
    if content is not None:
        check_image(content, "the content")
        content_targets = _content_features(params, content, objective)
    elif content_shape is None:
        raise JaxstyleError("targets without a content image need the content_shape")
    else:
        if np.ndim(content_shape) != 1 or len(content_shape) != 2:
            raise JaxstyleError(f"content_shape must be (H, W), not {content_shape!r}")
        sides = [integer("a content_shape side", side) for side in content_shape]
        shape = jax.ShapeDtypeStruct((*sides, 3), jnp.float32)
        abstract = jax.eval_shape(lambda p, x: _content_features(p, x, objective), params, shape)
        zeros = {k: np.zeros(v.shape, v.dtype) for k, v in abstract.items()}
        content_targets = jax.device_put(zeros)
    if objective.style_loss == "mrf":
        per_style = [_style_patches(params, style, objective) for style in styles]
        patches = {k: jnp.concatenate([p[k] for p in per_style]) for k in per_style[0]}
        return Targets(content=content_targets, style=patches)
    per_style = [_grams(params, style, objective) for style in styles]
    grams = {k: jnp.stack([g[k] for g in per_style]) for k in per_style[0]}
    return Targets(
        content=content_targets, style=grams if separate else blend_grams(grams, weights)
    )


def blend_weights(blend: Sequence[float] | None, styles: int) -> np.ndarray:
    """(S,) float32 weights of ``styles`` style images' Grams, summing to 1: ``blend``
    normalised (None: equal). Refused unless one per style image, each >= 0, sum > 0."""
    if blend is None:
        return np.full(styles, 1.0 / styles, np.float32)
    weights = finite_float32("style blend weights", blend, ndim=1).astype(np.float64)
    if len(weights) != styles or weights.sum() <= 0:
        given = ",".join(f"{w:g}" for w in weights) or "[] (no weights)"
        raise JaxstyleError(
            f"style blend weights must be one per style image ({styles}), each >= 0, "
            f"sum > 0; not {given}"
        )
    return (weights / weights.sum()).astype(np.float32)


@jit
def blend_grams(grams: dict, weights: ArrayLike) -> dict[str, jax.Array]:
    """{layer: (C, C)} Σ_s w_s·G_s of each style image's Grams {layer: (S, C, C)}
    and (S,) ``weights`` (:func:`blend_weights`)."""
    w = jnp.asarray(weights, jnp.float32)[:, None, None]
    return {k: (w * g).sum(0) for k, g in grams.items()}


@functools.partial(jit, static_argnums=2)
def _content_features(params, image, objective: Objective) -> dict[str, jax.Array]:
    """{layer: (h, w, C)} content features of one (H, W, 3) image (one program, so a
    run's set-up compiles, or loads from the cache, one program per image shape);
    float32 whatever the compute dtype."""
    feats = _features(params, image[None], objective.content_layers, objective)
    return {k: v[0].astype(jnp.float32) for k, v in feats.items()}


@functools.partial(jit, static_argnums=2)
def _grams(params, image, objective: Objective) -> dict[str, jax.Array]:
    """{layer: (C, C)} Gram matrices of one (H, W, 3) style image."""
    feats = _features(params, image[None], objective.style_layers, objective)
    norm = objective.gram_normalize
    return {k: losses.gram_matrix(f[0], normalize=norm) for k, f in feats.items()}


@functools.partial(jit, static_argnums=2)
def _style_patches(params, image, objective: Objective) -> dict[str, jax.Array]:
    """{layer: (P, k·k·C)} the MRF patches of one (H, W, 3) style image's features."""
    feats = _features(params, image[None], objective.style_layers, objective)
    o = objective
    return {
        k: losses.extract_patches(
            f[0].astype(jnp.float32), size=o.mrf_patch_size, stride=o.mrf_stride
        )
        for k, f in feats.items()
    }


def loss_terms(
    image: jax.Array,
    params: VGG19Weights,
    targets: Targets,
    weights: LossWeights,
    objective: Objective,
) -> dict[str, jax.Array]:
    """The weighted terms of J for one image.

    Args:
      image: (H, W, 3) RGB in [0, 1].

    Returns:
      {"content": α·L_c, "style": β·Σ w_l E_l (E_l of the Grams or of the MRF
      patches, as ``objective.style_loss``), "tv": γ·TV}, float32 scalars; J is
      their sum.
    """
    _check_loss_inputs(image, targets, weights, objective)
    acts = _features(params, image[None], objective.layers, objective)
    for name in objective.content_layers:
        _check_content_target(acts[name].shape[1:], jnp.shape(targets.content[name]), image)
    content = sum(
        losses.content_loss(
            acts[name][0], targets.content[name], reduction=objective.content_reduction
        )
        for name in objective.content_layers
    )
    if objective.style_loss == "mrf":
        style = _mrf_style(acts, targets, weights, objective)
    else:
        style = _gram_style(acts, targets, weights, objective)
    tv = losses.total_variation_loss(
        image * objective.tv_pixel_scale,
        power=objective.tv_power,
        reduction=objective.tv_reduction,
        wrap=objective.tileable,
    )
    return {
        "content": weights.content * content,
        "style": weights.style * style,
        "tv": weights.tv * tv,
    }


def _check_loss_inputs(
    image: jax.Array, targets: Targets, weights: LossWeights, objective: Objective
) -> None:
    """A clear error for an image that is not one (H, W, 3), targets that lack one of
    the objective's layers, or a wrong number of style layer weights (static shapes:
    also inside traced code)."""
    check_image(image, "the loss's image")
    check_objective(objective)
    for what, value, kind in (("targets", targets, Targets), ("weights", weights, LossWeights)):
        if not isinstance(value, kind):
            name = type(value).__name__
            raise JaxstyleError(f"the loss's {what} must be {kind.__name__}, not {name}")
    given = {"content": objective.content_layers, "style": objective.style_layers}
    if targets.style_masks is not None:
        given["style_masks"] = objective.style_layers
    for field, layers in given.items():
        missing = [name for name in layers if name not in getattr(targets, field)]
        if missing:
            raise JaxstyleError(
                f"targets.{field} lack the objective's layer(s) {', '.join(missing)}: "
                "compute the targets for this objective (compute_targets)"
            )
    for name in ("content", "style", "tv"):  # else the terms would be arrays of them
        if np.shape(getattr(weights, name)) != ():
            raise JaxstyleError(
                f"the {name} weight must be one number, (), not {np.shape(getattr(weights, name))} "
                "(jax.vmap the loss over a grid of LossWeights)"
            )
    layers = len(objective.style_layers)
    if jnp.shape(weights.style_layers) != (layers,):
        raise JaxstyleError(
            f"style layer weights must be ({layers},), one per style layer of the objective, "
            f"not {jnp.shape(weights.style_layers)}"
        )


def _check_content_target(features: tuple, target: tuple, image: jax.Array) -> None:
    """A clear error for content targets of another image size than ``image``'s."""
    if losses.broadcast_shape(target, features) != features:
        h, w = jnp.shape(image)[:2]
        raise JaxstyleError(
            f"the content targets {target} are not of a {w}x{h} px image's features "
            f"{features}: compute them from a content image of the optimised image's size"
        )


def _mrf_style(
    acts, targets: Targets, weights: LossWeights, objective: Objective
) -> jax.Array | float:
    """Σ_l w_l · MRF loss of one image's {layer: (1, h, w, C)} activations (0 for no layers)."""
    o, masks = objective, targets.style_masks
    return sum(
        w
        * losses.mrf_loss(
            acts[name][0],
            targets.style[name],
            patch_size=o.mrf_patch_size,
            reduction=o.style_reduction,
            mask=None if masks is None else masks[name],
            wrap=o.tileable,
        )
        for name, w in zip(o.style_layers, weights.style_layers, strict=True)
    )


def _gram_style(
    acts, targets: Targets, weights: LossWeights, objective: Objective
) -> jax.Array | float:
    """Σ_l w_l · E_l of one image's {layer: (1, h, w, C)} activations: the Gram
    loss, each style in its own region where the masks are (S, h, w)."""
    masks = targets.style_masks
    regions = masks is not None and masks[objective.style_layers[0]].ndim == 3
    style = losses.style_loss(  # with regions: (S,), the (1, h, w, C) features in each mask
        {name: acts[name] if regions else acts[name][0] for name in objective.style_layers},
        targets.style,
        layer_weights=dict(zip(objective.style_layers, weights.style_layers, strict=True)),
        normalize=objective.gram_normalize,
        reduction=objective.style_reduction,
        masks=masks,
    )
    if regions:
        area = losses.mask_positions(masks[objective.style_layers[0]])
        style = (area / area.sum() * style).sum()
    return style


def total_loss(
    image, params, targets, weights, objective
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(J, terms) for one (H, W, 3) image; see :func:`loss_terms`."""
    terms = loss_terms(image, params, targets, weights, objective)
    return terms["content"] + terms["style"] + terms["tv"], terms


class LossArgs(NamedTuple):
    """Every array a loss function reads besides the image (jit arguments, not constants).

    ``vgg`` is best :func:`jaxstyle.vgg.prepare_weights` of the weights (for the
    objective's ``conv_algorithm`` and the run's :meth:`Objective.winograd_kernels`):
    on the device, with the kernels of the image gradient precomputed.
    """

    vgg: VGG19Weights
    targets: Targets
    weights: LossWeights


def make_loss_fn(objective: Objective) -> Callable[[jax.Array, LossArgs], tuple]:
    """``loss_fn(image, args: LossArgs) -> (J, terms)`` for one (H, W, 3) image.

    The VGG19 weights are an argument rather than closed-over constants: the
    compiled steps then hold no weights (an L-BFGS step at 128 px: 1.2 MB
    instead of 312 MB), so they compile faster (5 s instead of 12 s) and load
    from the persistent cache in a fraction of a second. With the transposed
    kernels precomputed the speed per step is about that of constants (Adam
    +2-3%, L-BFGS -7%; without them Adam is +10-15%), measured on XLA:CPU with
    scripts/bench_driver.py. Cached, so runs with the same objective reuse
    their compiled steps whatever the weight set.
    """

    check_objective(objective)  # before the cache hashes it
    return _loss_fn(objective)


@functools.cache
def _loss_fn(objective: Objective) -> Callable[[jax.Array, LossArgs], tuple]:
    def loss_fn(image, args):
        return total_loss(image, args.vgg, args.targets, args.weights, objective)

    return keyed(loss_fn, objective)
