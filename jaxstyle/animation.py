"""``animate``: every frame of a clip painted in one batch run, and the clip written again.

A clip is an animated GIF, WebP or PNG (APNG), a multi-page TIFF, a directory of
frame images (in name order, numbers by value: ``f2.png`` before ``f10.png``) or a
list of frame paths. Its frames are the jobs of one :func:`jaxstyle.batch`: all of
one shape, so they run as vmapped chunks of one compiled program, sharded over
the devices, sharing the batch's settings (the seed too: every frame starts from
the same noise, or from its own content). The batch's output directory is
``OUTPUT.frames/`` beside the animation: the painted frames (``frame_00001.png``
and its record, ...) and, for an animated file, its frames as read
(``source/``). It is kept, so an interrupted run resumes where it stopped, and a
finished frame is never painted again.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxstyle import images as image_io
from jaxstyle.batch import BatchReport, batch, check_one_shape, check_options
from jaxstyle.errors import JaxstyleError
from jaxstyle.manifest import Job
from jaxstyle.paths import user_path
from jaxstyle.presets import DEFAULT_PRESET, MOTION, get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.weights import VGG19Weights, load_vgg19

FRAME_SUFFIXES = (*image_io.FORMATS, ".gif", ".bmp")
"""The files of a frame directory that are its frames."""

VIDEOS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
"""Video files, which Pillow cannot read: the error says how to pass their frames."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """The frames of an animation, in order.

    Attributes:
      frames: each frame's image file.
      durations: how long each shows, in milliseconds.
      loop: how often it repeats (0: forever; None: it plays once).
    """

    frames: tuple[Path, ...]
    durations: tuple[int, ...]
    loop: int | None = 0


@dataclasses.dataclass
class AnimateResult:
    """What :func:`animate` did.

    Attributes:
      output: the animation written (None in a process of ``jax.distributed``
        other than the first, which writes it).
      frames: the painted frames, in order (in ``OUTPUT.frames/``).
      clip: the clip read: its frame files, durations and loop count.
      report: the batch run of the frames (``skipped``: frames an earlier run painted).
      unchanged: the output already held this animation, every frame painted with
        these settings (the same call again): nothing was painted or written.
    """

    output: Path | None
    frames: list[Path]
    clip: Clip
    report: BatchReport
    unchanged: bool = False


def frames_directory(output: str | os.PathLike) -> Path:
    """Where :func:`animate` keeps the frames of ``output``: ``OUT.gif`` -> ``OUT.frames``."""
    output = Path(output)
    return output.with_name(output.stem + ".frames")


def read_clip(
    clip: str | os.PathLike | Sequence[str | os.PathLike],
    source_dir: str | os.PathLike,
    *,
    fps: float | None = None,
) -> Clip:
    """The frames of ``clip``: an animated image file (its frames written to
    ``source_dir`` as PNGs, or found there from an earlier run), a directory of frame
    images, or a sequence of frame paths. ``fps``: frames per second, replacing the
    file's durations (default: the file's own; 10 for a directory or a list)."""
    frame_ms = _frame_ms(fps)
    if isinstance(clip, (str, os.PathLike)):
        path = user_path(clip, "a clip path")
        if path.suffix.lower() in VIDEOS:
            raise JaxstyleError(
                f"cannot read {path}: jaxstyle reads animated GIF/WebP/PNG, not videos; "
                f"extract its frames first (ffmpeg -i {path} frames/%05d.png) and pass "
                "the directory"
            )
        files, durations, loop = (
            _directory_frames(path) if path.is_dir() else _extract(path, Path(source_dir))
        )
    else:
        files = _paths(clip, "a frame path")
        durations, loop = (image_io.FRAME_MS,) * len(files), 0
    if not files:
        raise JaxstyleError(f"the clip {clip} has no frames")
    if frame_ms is not None:
        durations = (frame_ms,) * len(files)
    return Clip(files, tuple(durations), loop)


def _frame_ms(fps: float | None) -> int | None:
    """A frame's milliseconds at ``fps`` frames a second (None: None, the clip's own)."""
    number = isinstance(fps, Real) and not isinstance(fps, (bool, np.bool_))  # numpy's too
    if fps is not None and not (number and 0 < fps <= 1000):
        raise JaxstyleError(f"fps must be a number in (0, 1000], not {fps!r}")
    return None if fps is None else round(1000 / float(fps))


def _paths(value: Any, what: str) -> tuple[Path, ...]:
    """``value``, a path or an iterable of them, as paths; anything else (a Pillow image,
    None, ...) is a one-line error naming ``what`` ("a style path")."""
    if not isinstance(value, (str, os.PathLike, Iterable)):
        raise JaxstyleError(
            f"{what} must be a str or path, or a list of them, not {type(value).__name__}"
        )
    values = [value] if isinstance(value, (str, os.PathLike)) else value
    return tuple(user_path(v, what) for v in values)


def _check_outside(directory: Path, output: Path) -> None:
    """Refuse an ``output`` (or its :func:`frames_directory`) that is in (or is) the frame
    directory ``directory``: a rerun would read it (or the painted frames) as frames."""
    if directory.resolve() in (output.parent.resolve(), frames_directory(output).resolve()):
        raise JaxstyleError(
            f"cannot write {output} or its frames into the clip directory {directory}: "
            "a rerun would read them as frames; write the output elsewhere"
        )


def _directory_frames(directory: Path) -> tuple[tuple[Path, ...], tuple[int, ...], int]:
    """A directory's frame images (:func:`_is_frame`) in name order, numbers by value, at
    10 a second."""

    def order(path: Path) -> list:  # the odd parts are the numbers ("²".isdigit(), not int)
        return [int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", path.name))]

    files = sorted(filter(_is_frame, directory.iterdir()), key=order)
    if not files:
        raise JaxstyleError(
            f"the directory {directory} holds no frames ({', '.join(FRAME_SUFFIXES)} files)"
        )
    return tuple(files), (image_io.FRAME_MS,) * len(files), 0


def _is_frame(path: Path) -> bool:
    """An image file of a frame directory, by its suffix; not a hidden one (macOS's
    ``._f1.png`` resource forks, ...)."""
    hidden = path.name.startswith(".")
    return path.suffix.lower() in FRAME_SUFFIXES and not hidden and path.is_file()


def _extract(path: Path, source_dir: Path) -> tuple[tuple[Path, ...], tuple[int, ...], int | None]:
    """An animated file's frames written to ``source_dir`` as PNGs (one there already,
    from an earlier run, must hold the same pixels); (files, durations, loop)."""
    frames = image_io.read_frames(path)
    first, second = next(frames), next(frames, None)
    if second is None:
        raise JaxstyleError(
            f"{path} is a still image, not an animation: paint it with jaxstyle stylize"
        )
    files, durations, loop = [], [], 0
    for i, frame in enumerate(itertools.chain((first, second), frames), start=1):
        file = source_dir / f"frame_{i:05d}.png"
        pixels = image_io.to_uint8(frame.image)
        if not file.exists():  # another process of jax.distributed may write it too
            image_io.save_image(file, pixels, overwrite=True)
        elif not np.array_equal(image_io.to_uint8(image_io.load_image(file)), pixels):
            raise JaxstyleError(
                f"{file} holds a frame of another clip; delete {source_dir.parent} to start over, "
                "or choose another output"
            )
        files.append(file)
        durations.append(frame.duration)
        loop = frame.loop
    return tuple(files), tuple(durations), loop


def animate(
    clip: str | os.PathLike | Sequence[str | os.PathLike],
    style: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    fps: float | None = None,
    preset: str = DEFAULT_PRESET,
    weights: VGG19Weights | str | os.PathLike | None = None,
    batch_size: int = 8,
    checkpoint_every: int = 0,
    devices: Sequence[jax.Device] | None = None,
    split_image: bool | int = False,
    driver: str = "auto",
    progress: bool = False,
    callback: Callable[[int, dict, np.ndarray, list[Path]], None] | None = None,
    callback_every: int = 0,
    on_plan: Callable[[BatchReport], None] | None = None,
    temporal_weight: float | None = None,
    motion: str = MOTION,
    **settings: Any,
) -> AnimateResult:
    """Paint every frame of ``clip`` in the style of ``style`` and write the animation.

    Args:
      clip: an animated GIF/WebP/PNG or multi-page TIFF, a directory of frames (in
        name order), or a list of frame paths; frames of one size.
      style: a style image path, or several (blended by ``style_blend``).
      output: the animation to write: ``.gif``, ``.webp`` or ``.png`` (APNG). Its
        frames (``frame_00001.png`` ... with their records) go to
        :func:`frames_directory` ``(output)``, which is kept: the same call again
        resumes there, painting only the frames not yet painted.
      fps: frames per second of the output (default: the clip's own timing; a
        directory's or list's: 10).
      temporal_weight: λ, how strongly each frame is held to its neighbours (aligned
        as ``motion`` says) where the clip is still or its motion is followed, against
        flicker (:mod:`jaxstyle.temporal`); 0: every
        frame painted on its own; None: the preset's (:attr:`Preset.temporal_weight
        <jaxstyle.presets.Preset.temporal_weight>`, measured for its losses).
      motion: how the neighbours are aligned with a frame before the pull: "flow" (the
        default), moved by the optical flow between the clip's frames, so that what
        moves (a camera pan) is held together too; "none", compared where they are.
      preset, weights, batch_size, checkpoint_every, devices, split_image, driver,
      progress, callback, callback_every, on_plan, **settings: as for
        :func:`jaxstyle.batch` (every frame with the same settings; ``progress``
        counts frames; ``on_plan`` is called once the frames are checked).

    Returns:
      An :class:`AnimateResult`. Nothing is painted when a frame cannot be
      (it raises :class:`JaxstyleError` naming the frame), and an existing
      ``output`` is never replaced.
    """
    if "dry_run" in settings:  # batch's keyword, not a setting: it would reach batch
        raise JaxstyleError("animate has no dry_run: it paints the frames and writes the output")
    if temporal_weight is None:
        temporal_weight = get_preset(preset).temporal_weight
    options = dict(
        preset=preset,
        batch_size=batch_size,
        checkpoint_every=checkpoint_every,
        devices=devices,
        split_image=split_image,
        driver=driver,
        callback=callback,
        callback_every=callback_every,
        temporal_weight=temporal_weight,
        motion=motion,
    )
    check_options(settings, on_plan=on_plan, **options)  # before a frame is extracted
    resolve_settings(preset, **settings)  # every frame's, coarse-to-fine sizes too: no row's own
    weights = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)
    output = user_path(output, "an output path")
    styles = _paths(style, "a style path")
    sources = [] if not isinstance(clip, (str, os.PathLike)) else [Path(clip)]
    image_io.check_output_path(output, [*sources, *styles], formats=image_io.ANIMATION_FORMATS)
    if sources and sources[0].is_dir():
        _check_outside(sources[0], output)
    work = frames_directory(output)
    exists = JaxstyleError(f"{output} exists; not overwriting it")
    if output.exists() and not work.is_dir():  # not this call's: the same call finished
        raise exists
    for path in styles:  # a bad style is its own error, not every frame's, before extracting
        image_io.load_image(path)
    if (frame_ms := _frame_ms(fps)) is not None:  # before a frame is extracted
        image_io.check_durations(output, [frame_ms])
        image_io.check_frame_rate(output, frame_ms)
    read = read_clip(clip, work / "source", fps=fps)
    image_io.check_durations(output, read.durations)  # a file's own: before painting
    jobs = [Job(i, frame, styles, f"frame_{i:05d}.png") for i, frame in enumerate(read.frames, 1)]
    painted = [work / job.output for job in jobs]

    def refuse_failed(plan: BatchReport) -> None:
        if plan.failed:
            line, message = plan.failed[0]
            more = f" (and {len(plan.failed) - 1} more)" if len(plan.failed) > 1 else ""
            raise JaxstyleError(f"frame {line} ({read.frames[line - 1]}): {message}{more}")
        check_one_shape(plan.buckets)
        if on_plan is not None:
            on_plan(plan)

    if output.exists():  # the same call again, finished: nothing to do; else refused
        plan = batch(
            jobs, work, weights=weights, on_plan=refuse_failed, dry_run=True, **options, **settings
        )
        if any(bucket["jobs"] for bucket in plan.buckets) or not _holds(output, painted, read):
            raise exists
        return AnimateResult(output, painted, read, plan, unchanged=True)
    report = batch(
        jobs, work, weights=weights, progress=progress, on_plan=refuse_failed, **options, **settings
    )
    if jax.process_count() > 1:  # every process's frames written before the first joins them
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jaxstyle animate: frames written")
        if jax.process_index() != 0:
            return AnimateResult(None, painted, read, report)
    image_io.save_animation(output, _frames(painted), read.durations, loop=read.loop)
    return AnimateResult(output, painted, read, report)


def _frames(painted: Sequence[Path]) -> list[np.ndarray]:
    """The painted frames' uint8 (H, W, 3) pixels, to join into the animation."""
    return [image_io.to_uint8(image_io.load_image(path)) for path in painted]


def _holds(output: Path, painted: Sequence[Path], read: Clip) -> bool:
    """Whether ``output`` is, byte for byte, the animation of the ``painted`` frames with
    ``read``'s timing that :func:`animate` writes."""
    encoded = image_io.encode_animation(output, _frames(painted), read.durations, loop=read.loop)
    try:
        return output.read_bytes() == encoded
    except OSError:
        return False
