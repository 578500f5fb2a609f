"""``stylize``: the one-call Python API for a single image."""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle import colors, target_cache
from jaxstyle import images as image_io
from jaxstyle.architecture import min_side
from jaxstyle.errors import JaxstyleError
from jaxstyle.objective import (
    LossArgs,
    LossWeights,
    Objective,
    Targets,
    compute_targets,
    finite_float32,
    make_loss_fn,
)
from jaxstyle.optimize import (
    OptimizerConfig,
    compile_once,
    final_image,
    make_init,
    make_step,
    run,
)
from jaxstyle.presets import DEFAULT_PRESET, Preset, get_preset
from jaxstyle.split_image import check_devices, split_rows
from jaxstyle.vgg import WinogradKernels, choose_conv_algorithm, prepare_weights
from jaxstyle.weights import VGG19Weights, load_vgg19

ImageLike = str | os.PathLike | np.ndarray | jax.Array
"""A path to an image file, or an (H, W, 3) RGB array: float in [0, 1], or uint8/uint16."""

INITS = ("content", "noise")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every resolved setting of a run (JSON-able via ``dataclasses.asdict``)."""

    preset: str
    size: int | None
    steps: int
    optimizer: str
    learning_rate: float
    content_weight: float
    style_weight: float
    tv_weight: float
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...]
    pooling: str
    init: str
    seed: int
    style_scale: float
    style_blend: tuple[float, ...] | None
    compute_dtype: str
    conv_algorithm: str
    preserve_colors: str | None
    coarse_to_fine: tuple[int, ...]
    coarse_to_fine_steps: tuple[int, ...] | None

    @property
    def passes(self) -> tuple[tuple[int | None, int], ...]:
        """(size, steps) of each pass: the coarse-to-fine ones (``steps`` each
        unless ``coarse_to_fine_steps`` says), then the last, (``size``, ``steps``)."""
        coarse = self.coarse_to_fine_steps or (self.steps,) * len(self.coarse_to_fine)
        return (*zip(self.coarse_to_fine, coarse, strict=True), (self.size, self.steps))

    @property
    def pass_starts(self) -> tuple[int, ...]:
        """The steps run before each pass (0 for the first): a pass's step k is the
        run's step ``pass_starts[i] + k``."""
        return tuple(itertools.accumulate((n for _, n in self.passes[:-1]), initial=0))

    @property
    def total_steps(self) -> int:
        """The steps of every pass together."""
        return self.pass_starts[-1] + self.steps

    def pass_overrides(self, size: int | None, steps: int) -> dict[str, Any]:
        """The overrides that make these settings one pass's (see :attr:`passes`)."""
        return {"size": size, "steps": steps, "coarse_to_fine": None, "coarse_to_fine_steps": None}

    @property
    def style_loss(self) -> str:
        """The preset's style loss: "gram" or "mrf" (see :class:`Objective`)."""
        return get_preset(self.preset).style_loss

    def objective(self, preset: Preset) -> Objective:
        return Objective.from_preset(
            preset,
            content_layers=self.content_layers,
            style_layers=self.style_layers,
            pooling=self.pooling,
            compute_dtype=self.compute_dtype,
            conv_algorithm=self.conv_algorithm,
        )

    def optimizer_config(self, preset: Preset) -> OptimizerConfig:
        return OptimizerConfig(
            name=self.optimizer,
            learning_rate=self.learning_rate,
            adam_b1=preset.adam_b1,
            adam_eps=preset.adam_eps,
        )

    def loss_weights(self) -> LossWeights:
        return LossWeights.create(
            content=self.content_weight,
            style=self.style_weight,
            tv=self.tv_weight,
            style_layers=self.style_layer_weights,
        )


def resolve_settings(preset: str = DEFAULT_PRESET, **overrides: Any) -> Settings:
    """The preset's defaults with every non-None override applied and checked."""
    p = get_preset(preset)
    values: dict[str, Any] = dict(
        preset=p.name,
        size=None,
        steps=p.steps,
        optimizer=p.optimizer,
        learning_rate=p.learning_rate,
        content_weight=p.content_weight,
        style_weight=p.style_weight,
        tv_weight=p.tv_weight,
        content_layers=p.content_layers,
        style_layers=p.style_layers,
        style_layer_weights=None,
        pooling=p.pooling,
        init=p.init,
        seed=0,
        style_scale=1.0,
        style_blend=None,
        compute_dtype="float32",
        conv_algorithm="auto",
        preserve_colors=None,
        coarse_to_fine=(),
        coarse_to_fine_steps=None,
    )
    unknown = set(overrides) - set(values)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("content_layers", "style_layers"):  # a list, or "relu1_1,relu2_1"
        layers = values[name]
        values[name] = tuple(layers.split(",") if isinstance(layers, str) else layers)
    if values["style_layer_weights"] is None:
        same_layers = values["style_layers"] == p.style_layers
        n = len(values["style_layers"])
        values["style_layer_weights"] = p.style_layer_weights if same_layers else (1.0,) * n
    for name in ("style_layer_weights", "style_blend"):
        if values[name] is not None:
            what = "style layer weights" if name == "style_layer_weights" else "style blend weights"
            numbers = finite_float32(what, values[name], ndim=1)
            values[name] = tuple(float(w) for w in numbers)
    if isinstance(values["coarse_to_fine"], str):
        sizes = auto_coarse_to_fine(values["coarse_to_fine"], values["size"])
        steps = values["coarse_to_fine_steps"]
        if steps is not None:  # one count for every pass, however many there are
            if np.ndim(steps) and len(steps) != 1:
                raise JaxstyleError("coarse-to-fine 'auto' takes one step count for its passes")
            steps = (np.ravel(steps)[0],) * len(sizes) or None
        values["coarse_to_fine"], values["coarse_to_fine_steps"] = sizes, steps
    _check_integers(values)
    values["conv_algorithm"] = choose_conv_algorithm(
        values["conv_algorithm"], values["compute_dtype"], values["size"]
    )
    settings = Settings(**values)
    _check(settings)
    return settings


AUTO_COARSEST = 256
"""``coarse_to_fine="auto"``'s smallest pass: below it a Gram matrix sees too few positions
to set the style's large structures."""


def auto_coarse_to_fine(mode: str, size: int | None) -> tuple[int, ...]:
    """``coarse_to_fine="auto"``: halve ``size`` while the half is at least
    :data:`AUTO_COARSEST`, e.g. 2048 -> (256, 512, 1024), 512 -> (256,), 256 -> ()."""
    if mode != "auto":
        raise JaxstyleError(f"coarse-to-fine must be sizes or 'auto', not {mode!r}")
    if size is None:
        raise JaxstyleError("coarse-to-fine 'auto' needs a size: the longest side of the last pass")
    sizes, half = [], int(size) // 2
    while half >= AUTO_COARSEST:
        sizes.insert(0, half)
        half //= 2
    return tuple(sizes)


MIN_SIZE = min_side("relu5_1")
"""The smallest ``size`` (and resized style side): every preset's deepest layer."""

SEEDS = (-(2**63), 2**63 - 1)
"""The smallest and largest seed (``jax.random.key`` takes 64-bit integers)."""


def _check_integers(values: dict[str, Any]) -> None:
    """``steps``, ``size``, ``seed`` and the ``coarse_to_fine`` sizes and steps
    (one or a sequence) must be integers (not bools); made Python ints (a tuple
    of them)."""
    for name in ("steps", "size", "seed"):
        if values[name] is not None:
            values[name] = _integer(name, values[name])
    for name, what in (
        ("coarse_to_fine", "coarse-to-fine size"),
        ("coarse_to_fine_steps", "coarse-to-fine steps"),
    ):
        items = values[name]
        if items is not None:
            items = [items] if np.ndim(items) == 0 else items
            values[name] = tuple(_integer(what, v) for v in items)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise JaxstyleError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _check(s: Settings) -> None:
    if s.steps < 0:
        raise JaxstyleError(f"steps must be >= 0, not {s.steps}")
    if s.size is not None and not MIN_SIZE <= s.size <= image_io.MAX_RESIZE:
        raise JaxstyleError(
            f"size must be from {MIN_SIZE} to {image_io.MAX_RESIZE} pixels, not {s.size}"
        )
    for kind, layers in (("content", s.content_layers), ("style", s.style_layers)):
        if not layers:
            raise JaxstyleError(f"no {kind} layers given")
    if not SEEDS[0] <= s.seed <= SEEDS[1]:
        raise JaxstyleError(f"seed must be a 64-bit integer, not {s.seed}")
    if len(s.style_layer_weights) != len(s.style_layers):
        raise JaxstyleError(
            f"{len(s.style_layer_weights)} style layer weights given for "
            f"{len(s.style_layers)} style layers"
        )
    if not s.style_scale > 0:
        raise JaxstyleError("style scale must be > 0")
    if s.coarse_to_fine:
        _check_coarse_to_fine(s.coarse_to_fine, s.size)
    if s.coarse_to_fine_steps is not None:
        if len(s.coarse_to_fine_steps) != len(s.coarse_to_fine):
            raise JaxstyleError(
                f"{len(s.coarse_to_fine_steps)} coarse-to-fine step counts given for "
                f"{len(s.coarse_to_fine)} coarse-to-fine size(s)"
            )
        if min(s.coarse_to_fine_steps) < 0:
            raise JaxstyleError("coarse-to-fine steps must be >= 0")
    if s.style_blend is not None and s.style_loss == "mrf":
        raise JaxstyleError(
            "an MRF style loss matches the style images' patches together: no style blend"
        )
    if s.preserve_colors not in (None, *colors.PRESERVE_COLORS):
        raise JaxstyleError(
            f"preserve colors must be {' or '.join(colors.PRESERVE_COLORS)}, "
            f"not {s.preserve_colors!r}"
        )
    s.objective(get_preset(s.preset))
    s.loss_weights()
    OptimizerConfig(name=s.optimizer, learning_rate=s.learning_rate)


def _check_coarse_to_fine(sizes: tuple[int, ...], size: int | None) -> None:
    if size is None:
        raise JaxstyleError("coarse-to-fine needs a size: the longest side of the last pass")
    if sizes[0] < MIN_SIZE or any(a >= b for a, b in zip(sizes, (*sizes[1:], size), strict=True)):
        raise JaxstyleError(
            f"coarse-to-fine sizes must rise from at least {MIN_SIZE} px to below the size "
            f"({size}), not {','.join(map(str, sizes))}"
        )


def as_image(image: ImageLike) -> np.ndarray:
    """An (H, W, 3) float32 array in [0, 1] from a path or an array (see
    :func:`jaxstyle.images.image_from_array`)."""
    if isinstance(image, (str, os.PathLike)):
        return image_io.load_image(image)
    return image_io.image_from_array(image)


def initial_image(init: str | ImageLike, content: np.ndarray | None, shape, seed: int) -> jax.Array:
    """The starting iterate (H, W, 3): the content, seeded uniform noise, or an image."""
    if isinstance(init, str) and init == "content":
        if content is None:
            raise JaxstyleError("init 'content' needs a content image")
        return jax.device_put(content)
    if isinstance(init, str) and init == "noise":
        return jax.random.uniform(jax.random.key(seed), (*shape, 3), jnp.float32)
    start = as_image(init)
    return jax.device_put(image_io.resize_to(start, shape))


@dataclasses.dataclass
class StylizeResult:
    """What :func:`stylize` returns.

    Attributes:
      image: (H, W, 3) float32 RGB in [0, 1].
      history: {"total", "content", "style", "tv": (steps,) float32}, the
        weighted losses of the image entering each step (of every pass, in
        order, with ``coarse_to_fine``: the passes' steps summed).
      final: the same four losses of the returned image (with ``preserve_colors=
        "luminance"``: of the optimised grey image, before the content's
        chroma is put back).
      settings: every resolved setting.
      timings: seconds: "load", "targets", "compile", "optimize" (summed over
        the passes), and "ms_per_step" (their mean).
      resumed_from: the step a checkpointed run resumed from (0: a fresh start).
    """

    image: np.ndarray
    history: dict[str, np.ndarray]
    final: dict[str, float]
    settings: Settings
    timings: dict[str, float]
    resumed_from: int = 0

    def save(
        self, path: str | os.PathLike, *, record: dict | None = None, overwrite: bool = False
    ) -> Path:
        """Write the image to ``path`` (.png/.jpg) and its record beside it, as
        ``jaxstyle stylize -o`` does: ``path`` with the suffix .json, holding the
        settings, final losses, loss history, timings, versions and machine, and
        ``record``'s entries (e.g. the inputs); ``jaxstyle plot`` reads it. The record
        is written first. An existing file at either is an error unless ``overwrite``.
        Returns the record's path."""

        from jaxstyle.provenance import record_text, run_metadata

        path = Path(path)
        image_io.check_output_path(path, [])
        record_path = path.with_suffix(".json")
        for existing in (path, record_path):
            if existing.exists() and not overwrite:
                raise JaxstyleError(f"{existing} exists; not overwriting it")
        content = {
            "output": str(path),
            **(record or {}),
            "settings": dataclasses.asdict(self.settings),
            "final_losses": self.final,
            "timings": self.timings,
            "history": {k: np.asarray(v).tolist() for k, v in self.history.items()},
            **run_metadata(),
        }
        image_io.write_text_atomic(record_path, record_text(content))
        image_io.save_image(path, self.image, overwrite=overwrite)
        return record_path


def step_image_path(output: str | os.PathLike, step: int) -> Path:
    """The image of ``step`` saved beside ``output``: OUT.stepNNNNN.SUFFIX."""
    output = Path(output)
    return output.with_name(f"{output.stem}.step{step:05d}{output.suffix}")


def step_image_saver(
    output: str | os.PathLike, *, overwrite: bool = False
) -> Callable[[int, dict, np.ndarray], None]:
    """A :func:`stylize` callback writing each image it is given to
    :func:`step_image_path` (``jaxstyle stylize -o OUT --save-every N`` is
    ``callback=step_image_saver(OUT), callback_every=N``). An existing file is an
    error unless ``overwrite``."""
    output = Path(output)
    image_io.check_output_path(output, [])

    def save(step: int, losses: dict, image: np.ndarray) -> None:
        image_io.save_image(step_image_path(output, step), image, overwrite=overwrite)

    return save


def texture_overrides(
    content: ImageLike | None, init: Any, content_weight: Any = None
) -> tuple[Any, dict[str, float]]:
    """(init, setting overrides) of a run: without a content image (texture synthesis)
    it starts from noise unless another init is given, and its content weight is 0
    (one given, ``content_weight`` not None, is an error)."""
    if content is not None:
        return init, {}
    if content_weight is not None:
        raise JaxstyleError("content weight cannot be set without a content image")
    if isinstance(init, str) and init == "content":
        raise JaxstyleError("init 'content' needs a content image (a texture starts from noise)")
    return ("noise" if init is None else init), {"content_weight": 0.0}


def output_shape(content: np.ndarray | None, styles: Sequence[np.ndarray]) -> tuple[int, int]:
    """(H, W) of the result: the content image's, else (texture) the first style image's."""
    return (content if content is not None else styles[0]).shape[:2]


class Images(NamedTuple):
    """A run's images, resized, as its optimisation sees them: ``content`` (H, W, 3)
    or None (texture synthesis) and ``styles`` [(h, w, 3)], RGB in [0, 1],
    recoloured by ``preserve_colors`` (see :mod:`jaxstyle.colors`); ``original``:
    the content in its own colours where the result takes them back
    (``"luminance"``), else None."""

    content: np.ndarray | None
    styles: list[np.ndarray]
    original: np.ndarray | None = None


def prepare_images(
    content: ImageLike | None, style: ImageLike | Sequence[ImageLike], settings: Settings
) -> Images:
    """Load and resize the content (longest side ``size``) and style images, and
    recolour them as ``settings.preserve_colors`` asks."""
    # a list or tuple is several images; any other value, one
    styles = list(style) if isinstance(style, (list, tuple)) else [cast(ImageLike, style)]
    if not styles:
        raise JaxstyleError("at least one style image is needed")
    if content is None and settings.preserve_colors:
        raise JaxstyleError("preserving colours needs a content image (texture synthesis has none)")
    content_img = None if content is None else as_image(content)
    if content_img is not None and settings.size:
        content_img = image_io.resize_longest(content_img, settings.size)
    reference = settings.size or (max(content_img.shape[:2]) if content_img is not None else None)
    style_imgs = []
    for s in styles:
        img = as_image(s)
        side = reference or max(img.shape[:2])
        scaled = max(MIN_SIZE, round(side * settings.style_scale))
        style_imgs.append(image_io.resize_longest(img, scaled))
    patch = get_preset(settings.preset).mrf_patch_size if settings.style_loss == "mrf" else 1
    sides = (settings.content_layers, settings.style_layers, patch, settings.size)
    _check_sides("content", content_img, *sides)
    for img in style_imgs:
        _check_sides("style", img, (), *sides[1:])
    return _recolor(settings.preserve_colors, content_img, style_imgs)


def _recolor(mode: str | None, content: np.ndarray | None, styles: list[np.ndarray]) -> Images:
    """The :class:`Images` of a ``preserve_colors`` mode from the resized images."""
    if mode is None:
        return Images(content, styles)
    assert content is not None, "prepare_images refuses to preserve colours without a content"
    if mode == "histogram":
        return Images(
            content, [np.asarray(colors.match_color_histogram(s, content)) for s in styles]
        )
    grey_styles = [np.asarray(colors.match_luminance(s, content)) for s in styles]
    return Images(np.asarray(colors.luminance_image(content)), grey_styles, original=content)


def restore_colors(images: np.ndarray, original: np.ndarray | None) -> np.ndarray:
    """Optimised ``images`` (..., H, W, 3) with the chroma of ``original`` (the
    :attr:`Images.original` content, H x W) where it is not None."""
    if original is None:
        return images
    return np.asarray(colors.with_content_colors(images, original))


def prepare_mask(
    mask: ImageLike | Sequence[ImageLike] | None,
    shape: tuple[int, int],
    styles: int,
    settings: Settings | None = None,
) -> np.ndarray | None:
    """The weights in [0, 1] of a style mask resized to the output ``shape``: (H, W)
    for one mask (a path, or an (h, w) or (h, w, 3) array: its luminance), which
    every style shares; (S, H, W) for a list of one mask per style image (``styles``
    of them), each style matched in its own region (so not with the ``settings``'
    style blend, nor an MRF style loss); None for None."""
    if mask is None:
        return None
    if not isinstance(mask, (list, tuple)):  # one mask, whatever its type
        return _mask_weights(cast(ImageLike, mask), shape)
    if len(mask) != styles:
        raise JaxstyleError(
            f"{len(mask)} masks given for {styles} style image(s): give one mask, or one per style"
        )
    if settings is not None and settings.style_blend is not None:
        raise JaxstyleError("styles with a mask each are not blended: leave out the style blend")
    if settings is not None and settings.style_loss == "mrf":
        raise JaxstyleError(
            "an MRF style loss matches the style images' patches together: give one mask"
        )
    return np.stack([_mask_weights(m, shape) for m in mask])


def mask_record(mask: ImageLike | Sequence[ImageLike] | None) -> str | list[str] | None:
    """A mask argument as a run's record holds it: one path, a list of one per
    style, or None."""
    if mask is None:
        return None
    return [str(m) for m in mask] if isinstance(mask, (list, tuple)) else str(mask)


def _mask_weights(mask: ImageLike, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(mask, (str, os.PathLike)) and np.ndim(mask) == 2:
        mask = np.repeat(np.asarray(mask)[..., None], 3, axis=-1)
    image = image_io.resize_to(as_image(mask), shape)
    weights = np.asarray(colors.rgb_to_yiq(image)[..., 0]).clip(0.0, 1.0)
    if not weights.any():
        raise JaxstyleError("a mask is black everywhere: no pixel would take its style")
    return weights


def _check_sides(
    kind: str,
    image: np.ndarray | None,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    patch: int = 1,
    size: int | None = None,
) -> None:
    """An image (H, W, 3), as resized (to a longest side of ``size``, the run's or
    its coarse-to-fine pass's), must reach the deepest of its layers with feature
    maps that are not empty (at least 16 px a side for relu5_1), at the style
    layers at least ``patch`` positions a side (an MRF loss's patches)."""
    if image is None:
        return
    needs = [(min_side(name), name) for name in content_layers]
    needs += [(patch * min_side(name), name) for name in style_layers]
    need, last = max(needs)
    h, w = image.shape[:2]
    if min(h, w) < need:
        raise JaxstyleError(
            f"the {kind} image is {w}x{h} px after resizing"
            f"{f' to {size} px' if size else ''}; {last} needs sides of at least {need} px: "
            f"use a larger size (or coarse-to-fine size){' or style scale' * (kind == 'style')}"
        )


def stylize(
    content: ImageLike | None,
    style: ImageLike | Sequence[ImageLike],
    *,
    preset: str = DEFAULT_PRESET,
    weights: VGG19Weights | str | os.PathLike | None = None,
    mask: ImageLike | Sequence[ImageLike] | None = None,
    driver: str = "auto",
    progress: bool = False,
    callback: Callable[[int, dict, np.ndarray], None] | None = None,
    callback_every: int = 0,
    devices: Sequence[jax.Device] | None = None,
    checkpoint_dir: os.PathLike | str | None = None,
    checkpoint_every: int = 0,
    **settings: Any,
) -> StylizeResult:
    """Paint ``content`` in the style of ``style`` (Gatys et al.).

    Args:
      content: the photograph (path or (H, W, 3) array in [0, 1]); None for
        texture synthesis (content weight 0, output the style's size).
      style: one style image or a list of them (Grams blended by ``style_blend``).
      preset: loss definition and defaults: ``jaxstyle`` (default), ``jcjohnson``, ``gatys``,
        ``pytorch-tutorial``, ``tf-tutorial``, ``cnnmrf`` (Li & Wand's MRF
        style loss, :func:`jaxstyle.losses.mrf_loss`).
      weights: VGG19 weights, a weight set directory, or None for the default.
      mask: where the style goes: an image (path or array) resized to the
        output, white (1) where the style is matched, black (0) where only the
        content and TV losses act, greys between (guided Grams, Gatys et al.
        2017); or a list of one mask per style image, each style matched in
        its own region (not blended; each region's loss weighted by its area);
        None: everywhere.
      driver: loop driver, ``auto``/``python``/``device`` (see optimize.choose_driver).
      progress: show a progress bar with the step and the losses.
      callback: called as ``callback(step, losses, image)`` after every
        ``callback_every``-th step (e.g. to save intermediate images; the last
        step's image is the result's).
      devices: split the image's rows over these devices (spatial partitioning,
        :mod:`jaxstyle.split_image`: each holds 1/n of the activations, for
        pictures too large for one device's memory); None or one device: the
        default device.
      checkpoint_dir: make the run resumable: its state is saved there every
        ``checkpoint_every`` steps (0: only on SIGTERM/SIGINT, which then raise
        :class:`jaxstyle.Interrupted`), and a run with the same
        arguments resumes from it (one of another run is refused). It runs as
        a one-cell :func:`jaxstyle.sweep`, which checkpoints: the same result as
        without, to float rounding.
      **settings: overrides of the preset: ``size`` (longest side, pixels),
        ``steps``, ``optimizer`` (adam|lbfgs), ``learning_rate``,
        ``content_weight``, ``style_weight``, ``tv_weight``, ``content_layers``,
        ``style_layers``, ``style_layer_weights``, ``pooling`` (max|avg),
        ``init`` ("content", "noise", a path or an array), ``seed``,
        ``style_scale``, ``style_blend``, ``compute_dtype`` ("float32" or
        "bfloat16": the dtype of the VGG19 convolutions and the Grams'
        products, which accumulate in float32; losses, the image and the
        optimiser state stay float32), ``conv_algorithm``
        ("auto", "direct" or "winograd": how VGG19 blocks 3-5 convolve; auto is
        Winograd on the CPU in float32 from 112 px, see
        :func:`jaxstyle.vgg.choose_conv_algorithm`), ``preserve_colors``
        (None: the style's colours; "luminance": luminance-only transfer, the
        result keeps the content's chroma; "histogram": the style images are
        recoloured to the content's colour mean and covariance first; see
        :mod:`jaxstyle.colors`), ``coarse_to_fine`` (rising sizes below ``size``
        of earlier passes: each pass runs ``steps`` steps at its size and the
        next starts from its result, upsampled; Gatys et al. 2017, sec. 6; or
        "auto": ``size`` halved while at least 256 px, see
        :func:`auto_coarse_to_fine`), ``coarse_to_fine_steps`` (the steps of
        those passes, one per size, if not ``steps``: ``steps`` is then the last
        pass's; with "auto", one count for all of them).

    Returns:
      A :class:`StylizeResult` with the image and the loss history.
    """
    given = dict(settings)  # as asked, for a resumable run
    init, texture = texture_overrides(
        content, settings.pop("init", None), settings.get("content_weight")
    )
    settings.update(texture)
    init_label = init if isinstance(init, str) or init is None else "image"
    s = resolve_settings(preset, init=init_label, **settings)
    devices = None if devices is None else check_devices(devices)
    if callback_every < 0:
        raise JaxstyleError(f"callback_every must be >= 0 steps, not {callback_every}")
    if checkpoint_dir is not None:
        return _stylize_resumable(
            content,
            style,
            preset=preset,
            weights=weights,
            mask=mask,
            driver=driver,
            progress=progress,
            callback=callback,
            callback_every=callback_every,
            devices=devices,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            **given,
        )
    t = time.perf_counter()
    params = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)
    load = time.perf_counter() - t
    start = s.init if init_label != "image" else init

    def numbered_from(done, callback):  # a pass's callback, its steps counted from the run's start
        return lambda step, losses, image: callback(done + step, losses, image)

    passes: list[_Pass] = []
    for (size, steps), done in zip(s.passes, s.pass_starts, strict=True):
        # each pass resolved at its own size (the convolution algorithm depends on it)
        pass_settings = {**settings, **s.pass_overrides(size, steps)}
        passes.append(
            _stylize_pass(
                content,
                style,
                resolve_settings(preset, init=init_label, **pass_settings),
                params,
                start if not passes else passes[-1].optimized,
                mask=mask,
                driver=driver,
                progress=progress,
                callback=numbered_from(done, callback) if callback else None,
                callback_every=callback_every,
                devices=devices,
            )
        )
    last = passes[-1].result
    history = {k: np.concatenate([q.result.history[k] for q in passes]) for k in last.history}
    timings = {k: sum(q.result.timings[k] for q in passes) for k in last.timings}
    timings["load"] += load
    timings["ms_per_step"] = 1e3 * timings["optimize"] / max(1, len(history["total"]))
    return StylizeResult(last.image, history, last.final, s, timings)


def _stylize_resumable(content, style, *, devices, callback, **options) -> StylizeResult:
    """:func:`stylize` with checkpoints: a sweep of one cell on the default device
    (or split over ``devices``), which checkpoints and resumes."""
    from jaxstyle.sweep import sweep

    devices = devices or jax.devices()[:1]  # checked by stylize; none: the default device

    def cell_callback(step, losses, images):  # the one cell's, as stylize reports them
        callback(step, {k: float(v[0]) for k, v in losses.items()}, images[0])

    r = sweep(
        content,
        style,
        devices=devices,
        split_image=len(devices),
        callback=cell_callback if callback else None,
        **options,
    )
    return StylizeResult(
        r.images[0],
        {k: v[0] for k, v in r.history.items()},
        {k: float(r.final[k][0]) for k in sorted(r.final, key=lambda k: k != "total")},
        r.cell_settings(0),
        r.timings,
        r.resumed_from,
    )


class _Pass(NamedTuple):
    """One optimisation at one size: its result (in the colours asked for) and the
    optimised (H, W, 3) image as the optimisation left it (the next pass's start)."""

    result: StylizeResult
    optimized: jax.Array


def _stylize_pass(content, style, s: Settings, params, init, mask, **run_options) -> _Pass:
    """Optimise one image at ``s.size`` from ``init`` ("content", "noise" or an image)."""
    p = get_preset(s.preset)
    objective = s.objective(p)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    content_img, style_imgs, original = prepare_images(content, style, s)
    shape = output_shape(content_img, style_imgs)
    x0 = initial_image(init, content_img, shape, s.seed)
    mask_weights = prepare_mask(mask, shape, len(style_imgs), s)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    kernels = objective.winograd_kernels(shape, [img.shape[:2] for img in style_imgs])
    targets = prepare_targets(
        params, objective, content_img, style_imgs, s, kernels=kernels, mask=mask_weights
    )
    timings["targets"] = time.perf_counter() - t

    vgg = prepare_weights(params, objective.conv_algorithm, kernels)
    args = LossArgs(vgg, targets, s.loss_weights())
    callback = run_options.pop("callback")

    def report(step, losses, image):  # in the colours of the result
        callback(step, losses, restore_colors(image, original))

    image, history, run_result = optimize_image(
        objective,
        s.optimizer_config(p),
        x0,
        args,
        s.steps,
        callback=report if callback else None,
        **run_options,
    )
    final = final_losses(objective, image, args)
    timings.update(
        compile=run_result.compile_seconds,
        optimize=run_result.run_seconds,
        ms_per_step=1e3 * run_result.run_seconds / max(1, s.steps),
    )
    result = StylizeResult(restore_colors(np.asarray(image), original), history, final, s, timings)
    return _Pass(result, image)


def prepare_targets(
    params: VGG19Weights,
    objective: Objective,
    content: np.ndarray | None,
    styles: Sequence[np.ndarray],
    settings: Settings,
    *,
    kernels: WinogradKernels | None = None,
    mask: np.ndarray | None = None,
    cache: bool = True,
) -> Targets:
    """The run's targets (computed, ready) from the prepared content (H, W, 3) or None
    (texture synthesis: zeros of the first style image's shape) and style images.

    Computed with the weights the steps use (:func:`prepare_weights` with the
    run's Winograd ``kernels``, on the device), so they are not copied to the
    device again for each image; the style restricted to ``mask`` (H, W), or
    each style to its own region of ``mask`` (S, H, W), unblended (see
    :func:`prepare_mask` and :meth:`Targets.with_style_mask`). With
    ``cache``, read from the disk cache instead where a run with the same inputs
    stored them, and stored there otherwise (:mod:`jaxstyle.target_cache`)."""
    shape = output_shape(content, styles)
    separate = mask is not None and mask.ndim == 3  # one region per style, no blend
    key = None
    if cache:
        blend = "separate" if separate else settings.style_blend
        key = target_cache.key(params, objective, content, styles, blend, shape)
    targets = target_cache.load(key)
    if targets is None:
        targets = compute_targets(
            prepare_weights(params, objective.conv_algorithm, kernels),
            objective,
            None if content is None else jax.device_put(content),
            [jax.device_put(img) for img in styles],
            blend=settings.style_blend,
            separate=separate,
            content_shape=shape,
        )
        target_cache.store(key, targets)
    return jax.block_until_ready(targets.with_style_mask(mask, objective.style_layers))


def optimize_image(
    objective,
    config,
    x0,
    args,
    steps,
    *,
    driver="auto",
    progress=False,
    callback=None,
    callback_every=0,
    devices=None,
):
    """Run the optimiser on one image from x0 (H, W, 3) with ``args`` (:class:`LossArgs`);
    returns (image, history, RunResult). With several ``devices`` the image's rows
    are split over them (:mod:`jaxstyle.split_image`)."""
    from jaxstyle.progress import progress_bar

    loss_fn = make_loss_fn(objective)
    init, step = make_init(loss_fn, config), make_step(loss_fn, config)
    if devices is not None and len(devices) > 1:
        x0, args, init, step = split_rows(x0, args, init, step, devices)
    carry = compile_once(init, x0, args)(x0, args)
    bar = progress_bar(progress, total=steps, desc="stylize", unit="step", leave=False)

    def on_progress(done, record, get_carry):
        bar.set_postfix({k: f"{float(v):.3g}" for k, v in record.items()}, refresh=False)
        bar.update(done - bar.n)
        if callback and callback_every > 0 and done % callback_every == 0:
            callback(
                done, {k: float(v) for k, v in record.items()}, np.asarray(final_image(get_carry()))
            )

    with bar:
        result = run(
            step,
            carry,
            args,
            steps,
            driver=driver,
            on_progress=on_progress if progress or callback else None,
            progress_every=callback_every if callback else 0,
        )
    history = {k: np.asarray(v) for k, v in result.history.items()}
    if not history:
        history = {k: np.zeros((0,), np.float32) for k in ("total", "content", "style", "tv")}
    return final_image(result.carry), history, result


def final_losses(objective: Objective, image, args: LossArgs) -> dict[str, float]:
    """The weighted loss terms and total of the finished (H, W, 3) image."""
    loss_fn = make_loss_fn(objective)
    total, terms = compile_once(loss_fn, image, args)(image, args)
    return {"total": float(total), **{k: float(v) for k, v in terms.items()}}
