"""``stylize``: the one-call Python API for a single image."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxstyle import images as image_io
from jaxstyle import target_cache
from jaxstyle.errors import JaxstyleError
from jaxstyle.inputs import (
    ImageLike,
    initial_image,
    mask_record,
    named_init,
    output_shape,
    prepare_images,
    prepare_mask,
    restore_colors,
    style_list,
    texture_overrides,
)
from jaxstyle.objective import LossArgs, Objective, Targets, compute_targets, make_loss_fn
from jaxstyle.optimize import choose_driver, compile_once, final_image, make_init, make_step, run
from jaxstyle.presets import DEFAULT_PRESET, get_preset
from jaxstyle.resume import check_callback
from jaxstyle.settings import Settings, check_every, resolve_settings
from jaxstyle.split_image import check_devices, split_rows
from jaxstyle.vgg import WinogradKernels, prepare_weights
from jaxstyle.weights import VGG19Weights, load_vgg19


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
      inputs: the run's images as its record holds them, {"content": path or None,
        "styles": [path, ...], "init": "content", "noise" or a path, "mask": None, a
        path or a list of them}, so that :func:`jaxstyle.recorded_run` of the saved
        record runs it again; None where one of them was no path (an array, a Pillow
        image).
      weights: the name of the weight set the run used (:attr:`VGG19Weights.name`), so
        that the saved record asks for it again (:func:`jaxstyle.recorded_run`).
    """

    image: np.ndarray
    history: dict[str, np.ndarray]
    final: dict[str, float]
    settings: Settings
    timings: dict[str, float]
    resumed_from: int = 0
    inputs: dict[str, Any] | None = None
    weights: str | None = None

    def save(
        self, path: str | os.PathLike, *, record: dict | None = None, overwrite: bool = False
    ) -> Path:
        """Write the image to ``path`` (.png/.jpg) and its record beside it, as
        ``jaxstyle stylize -o`` does: ``path`` with the suffix .json, holding the
        settings, final losses, loss history, timings (of the steps run after
        :attr:`resumed_from`, recorded where not 0), versions and machine, the
        :attr:`inputs`, and ``record``'s entries (which take their place); ``jaxstyle
        plot`` reads it, and :func:`jaxstyle.recorded_run` where it has inputs. The record
        is written first. An existing file at either is an error unless ``overwrite``.
        Returns the record's path."""

        from jaxstyle.provenance import record_text, run_metadata, run_sources

        path = Path(path)
        image_io.check_output_path(path, [])
        record_path = path.with_suffix(".json")
        for existing in (path, record_path):
            if existing.exists() and not overwrite:
                raise JaxstyleError(f"{existing} exists; not overwriting it")
        content = {
            "output": str(path),
            **run_sources(self),
            **(record or {}),
            "settings": dataclasses.asdict(self.settings),
            "final_losses": self.final,
            "timings": self.timings,
            **({"resumed_from": self.resumed_from} if self.resumed_from else {}),
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
      content: the photograph (a path, a Pillow image, or an (H, W, 3) array in [0, 1]
        or uint8); None for texture synthesis (content weight 0, output the style's size).
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
        step's image is the result's). ``losses`` are the step's record (those of
        the image that entered it, :func:`~jaxstyle.optimize.make_step`), one step
        behind ``image``.
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
        ``init`` ("content", "noise", a path, a Pillow image or an array), ``seed``,
        ``style_scale``, ``style_blend``, ``compute_dtype`` ("float32" or
        "bfloat16": the dtype of the VGG19 convolutions and the Grams'
        products, which accumulate in float32; losses, the image and the
        optimiser state stay float32), ``conv_algorithm``
        ("auto", "direct" or "winograd": how VGG19 blocks 3-5 convolve; auto is
        Winograd on the CPU in float32 from a ``size`` of 112 px, and without a
        ``size`` whatever the content's, which is not known when it is chosen; see
        :func:`jaxstyle.vgg.choose_conv_algorithm`), ``preserve_colors``
        (None: the style's colours; "luminance": luminance-only transfer, the
        result keeps the content's chroma; "histogram": the style images are
        recoloured to the content's colour mean and covariance first; see
        :mod:`jaxstyle.colors`), ``coarse_to_fine`` (rising sizes below ``size``
        of earlier passes: each pass runs ``steps`` steps at its size and the
        next starts from its result, upsampled; Gatys et al. 2017, sec. 6; or
        "auto": ``size`` halved while at least 256 px, see
        :func:`jaxstyle.settings.auto_coarse_to_fine`), ``coarse_to_fine_steps`` (the steps of
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
    start = s.init if init_label != "image" else init
    inputs = recorded_inputs(content, style, mask, start)
    devices = None if devices is None else check_devices(devices)
    choose_driver(driver)  # a bad one before the weights load and the step compiles
    check_callback("callback", callback)
    check_every("callback_every", callback_every)
    check_every("checkpoint every", checkpoint_every)
    t = time.perf_counter()
    params = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)
    load = time.perf_counter() - t
    if checkpoint_dir is not None:
        resumed = _stylize_resumable(
            content,
            style,
            preset=preset,
            weights=params,
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
        return dataclasses.replace(resumed, inputs=inputs, weights=params.name)

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
    return StylizeResult(
        last.image, history, last.final, s, timings, inputs=inputs, weights=params.name
    )


def recorded_inputs(content, style, mask, init) -> dict[str, Any] | None:
    """:attr:`StylizeResult.inputs` of a run of these arguments (``init`` resolved:
    "content", "noise" or an image): None unless each image is a path."""
    styles = style_list(style)
    masks = [] if mask is None else style_list(mask)  # one, or one per style
    named = named_init(init)
    images = [*([] if content is None else [content]), *styles, *masks, *([] if named else [init])]
    if not all(isinstance(x, (str, os.PathLike)) for x in images):
        return None
    return {
        "content": None if content is None else str(content),
        "styles": [str(x) for x in styles],
        "init": init if named else str(init),
        "mask": mask_record(mask),
    }


def _stylize_resumable(content, style, *, devices, callback, **options) -> StylizeResult:
    """:func:`stylize` with checkpoints: a sweep of one cell on the default device
    (or split over ``devices``), which checkpoints and resumes."""
    from jaxstyle.sweep import sweep

    devices = jax.devices()[:1] if devices is None else devices  # checked by stylize

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
    rows = len(run_options.get("devices") or ())  # the image's rows split over them
    content_img, style_imgs, original = prepare_images(content, style, s, rows=rows)
    shape = output_shape(content_img, style_imgs)
    x0 = initial_image(init, content_img, shape, s.seed, grey=s.preserve_colors == "luminance")
    mask_weights = prepare_mask(mask, shape, len(style_imgs), s)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    kernels = objective.winograd_kernels(shape, [img.shape[:2] for img in style_imgs])
    targets = prepare_targets(
        params, objective, content_img, style_imgs, s, kernels=kernels, mask=mask_weights
    )
    timings["targets"] = time.perf_counter() - t

    vgg = prepare_weights(params, conv_algorithm=objective.conv_algorithm, kernels=kernels)
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
    separate: bool = False,
) -> Targets:
    """The run's targets (computed, ready) from the prepared content (H, W, 3) or None
    (texture synthesis: zeros of the first style image's shape) and style images.

    Computed with the weights the steps use (:func:`prepare_weights` with the
    run's Winograd ``kernels``, on the device), so they are not copied to the
    device again for each image; the style restricted to ``mask`` (H, W), or
    each style to its own region of ``mask`` (S, H, W), unblended (see
    :func:`prepare_mask` and :meth:`Targets.with_style_mask`); with ``separate``
    each style image's Grams {layer: (S, C, C)} unblended (a sweep's blend axis
    blends them per cell: :func:`jaxstyle.objective.blend_grams`). With
    ``cache``, read from the disk cache instead where a run with the same inputs
    stored them, and stored there otherwise (:mod:`jaxstyle.target_cache`)."""
    shape = output_shape(content, styles)
    separate = separate or (mask is not None and mask.ndim == 3)  # one region per style
    key = None
    if cache:
        blend = "separate" if separate else settings.style_blend
        key = target_cache.key(params, objective, content, styles, blend, shape)
    targets = target_cache.load(key)
    if targets is None:
        targets = compute_targets(
            prepare_weights(params, conv_algorithm=objective.conv_algorithm, kernels=kernels),
            objective,
            None if content is None else jax.device_put(content),
            [jax.device_put(img) for img in styles],
            blend=None if separate else settings.style_blend,
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
