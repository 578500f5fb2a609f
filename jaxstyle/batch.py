"""``batch``: many stylize jobs, grouped by image shape into vmapped, sharded, resumable runs.

Grouping rule: shape buckets, no padding. Jobs whose content image (for
texture synthesis: first style image) has the same (H, W) after resizing, and
whose settings pick the same convolution algorithm and whose masks are laid
out alike (none, one, or one for each of S styles), form a bucket; with an MRF
style loss, whose targets hold every style patch, their style images' shapes
must match too. A bucket runs in chunks of at most ``batch_size`` jobs, each chunk one
:class:`~jaxstyle.cells.CellPlan` with every job's own targets and loss
weights (vmapped and sharded over the devices). Padding images to a common
shape was rejected: the padded pixels would enter the Gram matrices, the
content loss and the TV prior (masks would have to thread through every VGG
layer), so a job would no longer equal its solo run. The cost of buckets is one
compilation per distinct (shape, chunk size); jobs of one size share them.

Outputs are written as each chunk finishes: ``OUTPUT`` and ``OUTPUT.json``
(settings, final losses, history and the job's fingerprint). A rerun skips
jobs whose record matches (never recomputed or overwritten), redoes a job whose
image alone was deleted, refuses to overwrite files it did not write, and
resumes an interrupted chunk from its checkpoint (refusing one of other chunks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxstyle import images as image_io
from jaxstyle.batching import cells_per_device
from jaxstyle.cells import CellPlan, cell_groups, cell_mesh, join_passes
from jaxstyle.colors import luminance_image
from jaxstyle.errors import JaxstyleError
from jaxstyle.inputs import (
    as_image,
    initial_image,
    mask_record,
    named_init,
    output_shape,
    prepare_images,
    prepare_mask,
    restore_colors,
    texture_overrides,
)
from jaxstyle.manifest import Job, RowError, read_manifest, unique_outputs
from jaxstyle.optimize import choose_driver
from jaxstyle.paths import user_path
from jaxstyle.presets import DEFAULT_PRESET, MOTION, get_preset
from jaxstyle.resume import (
    CHECKPOINTS,
    STEP,
    Checkpointing,
    array_digest,
    as_json,
    check_callback,
    json_digest,
    recorded_fingerprint,
)
from jaxstyle.settings import Settings, check_batch_size, check_every, resolve_settings
from jaxstyle.split_image import ROWS
from jaxstyle.stylize import prepare_targets
from jaxstyle.temporal import TemporalPlan, check_motion, check_temporal_weight, frame_targets
from jaxstyle.weights import VGG19Weights, load_vgg19


@dataclasses.dataclass
class BatchReport:
    """What :func:`batch` did.

    Attributes:
      written: the output paths written by this run, in manifest order (none in
        a dry run).
      skipped: outputs of jobs finished by an earlier run (not recomputed).
      failed: the rows not run, with their manifest line and the reason.
      buckets: per image shape, convolution algorithm (see
        :func:`jaxstyle.vgg.choose_conv_algorithm`; one shape has two only when
        some jobs give no size) and mask layout: {"shape": (H, W),
        "conv_algorithm": name, "mask": None, "shared" or "per style (S)",
        "jobs": n, "chunks": k, "steps": each job's (all passes)}; with an MRF
        style loss also by the style images' shapes, "style_shapes": ((h, w),
        ...); with coarse-to-fine by every pass's, "pass_shapes": [(h, w), ...].
      timings: seconds: "compile", "optimize" (all chunks), "total" (a plan's:
        "total" only, its planning).
    """

    written: list[Path]
    skipped: list[Path]
    failed: list[RowError]
    buckets: list[dict]
    timings: dict[str, float]


@dataclasses.dataclass
class _Ready:
    """A job checked and ready to run: its settings as asked, and each pass's
    (one, or one per coarse-to-fine size, resolved at its size) with what shapes
    that pass's program: (image shape, convolution algorithm, the style images'
    shapes where the targets hold their patches (MRF), else None)."""

    job: Job
    settings: Settings
    passes: tuple[Settings, ...]
    programs: tuple[tuple, ...]
    fingerprint: dict
    output: Path
    mask: str | None  # the layout of its mask (:func:`_mask_layout`)
    position: int = 0  # its place among the jobs

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of its output."""
        return self.programs[-1][0]


def batch(
    jobs: str | os.PathLike | Sequence[Job],
    output_dir: str | os.PathLike,
    *,
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
    dry_run: bool = False,
    temporal_weight: float = 0.0,
    motion: str = MOTION,
    **settings: Any,
) -> BatchReport:
    """Run every job of a manifest (see :mod:`jaxstyle.manifest`), grouped by shape.

    Args:
      jobs: a ``.jsonl``/``.csv`` manifest path, or :class:`~jaxstyle.manifest.Job` s.
      output_dir: where the outputs (and their ``.json`` records) go (created).
      preset, weights, driver: as :func:`jaxstyle.stylize`.
      batch_size: at most this many jobs run together (vmapped) in one chunk.
      checkpoint_every: save a running chunk every N steps (0: only on
        SIGTERM/SIGINT, which then raise :class:`jaxstyle.Interrupted`).
      devices: the devices to shard each chunk over (default: all).
      split_image: also split each job's image by rows over this many devices
        (True: all of a process's), the jobs sharded over the groups of them.
      progress: a progress bar counting jobs.
      callback: called as ``callback(step, losses, images, outputs)`` after every
        ``callback_every``-th step of each pass of each chunk, with the steps run
        so far (over the chunks run), the chunk's losses {term: (n,)}, its
        (n, H, W, 3) images and its jobs' output paths (e.g. to show them in a
        :class:`~jaxstyle.live_view.LiveView`). With ``jax.distributed``, give
        it in every process (it gathers the chunk's images).
      on_plan: called once every row is checked and the jobs grouped, before any
        run, with the plan as a :class:`BatchReport` (``written`` empty): e.g. to
        report the bad rows at once, or to show the total steps.
      dry_run: plan only: check every row (reading its images) and the outputs,
        group the jobs, and return the plan, running nothing and writing nothing.
      temporal_weight: above 0, the jobs in order are the frames of one clip (of one
        shape): each is pulled towards its neighbours where their content images
        agree, with this weight λ (:mod:`jaxstyle.temporal`); chunks are runs of
        consecutive frames, each chunk's first frame pulled towards the frame
        painted before it. 0 (the default): every job on its own.
      motion: with ``temporal_weight``, how each frame's neighbours are aligned with it
        before the pull: "flow" (the default), warped by the optical flow between the
        content frames, so that moving regions are held together too; "none", compared
        where they are (:mod:`jaxstyle.temporal`).
      **settings: settings shared by every job (``size``, ``steps``,
        ``optimizer``, layers, ``coarse_to_fine``, ...), as for ``stylize``; a
        row's own settings (:data:`~jaxstyle.manifest.OVERRIDES`: content/style/TV
        weight, size, seed, style scale and style blend) take precedence.

    Returns:
      A :class:`BatchReport`; bad rows are in ``failed``, not raised. With
      ``jax.distributed`` over several processes, every process runs this with
      the same arguments (the output directory on a shared filesystem) and
      writes, and reports, the jobs its devices hold.
    """
    from jaxstyle.progress import progress_bar

    t0 = time.perf_counter()
    pulled, mesh = check_options(
        settings,
        preset=preset,
        batch_size=batch_size,
        checkpoint_every=checkpoint_every,
        devices=devices,
        split_image=split_image,
        driver=driver,
        callback=callback,
        callback_every=callback_every,
        on_plan=on_plan,
        temporal_weight=temporal_weight,
        motion=motion,
    )
    if isinstance(jobs, (str, os.PathLike)):
        jobs, failed = read_manifest(Path(jobs))
        rows: list = sorted([*jobs, *failed], key=lambda row: row.line)
    else:
        listed = list(jobs) if isinstance(jobs, Iterable) else None
        if listed is None or not all(isinstance(job, Job) for job in listed):
            raise JaxstyleError(
                "jobs must be a manifest path or jaxstyle.manifest.Job objects "
                "(jaxstyle.read_manifest reads them)"
            )
        jobs, failed = unique_outputs(listed)
        rows = listed
    positions = _positions(rows, jobs)
    out = image_io.check_output_dir(user_path(output_dir, "an output directory"))
    params = weights if isinstance(weights, VGG19Weights) else load_vgg19(weights)

    ready: list[_Ready] = []
    skipped: list[Path] = []
    done: dict[int, _Ready] = {}  # the jobs painted with these settings, by position
    for position, job in zip(positions, jobs, strict=True):
        try:
            item = _check(job, out, preset, settings, params, pulled, position, mesh.shape[ROWS])
            finished = _finished(item)
        except JaxstyleError as err:
            failed.append(RowError(job.line, str(err)))
            continue
        if finished:
            skipped.append(item.output)
            done[position] = item
        else:
            ready.append(item)
    failed.sort()

    buckets = _buckets(ready)
    saved = _saved_chunks(out / CHECKPOINTS)
    bucket_chunks = [
        _chunks(items, batch_size, pulled=bool(pulled), saved=saved) for items in buckets.values()
    ]
    chunks = [chunk for runs in bucket_chunks for chunk in runs]
    summary = [
        {
            "shape": programs[-1][0],
            "conv_algorithm": programs[-1][1],
            "mask": mask,
            **({} if programs[-1][2] is None else {"style_shapes": programs[-1][2]}),
            **({} if len(programs) == 1 else {"pass_shapes": [q[0] for q in programs]}),
            "jobs": len(items),
            "chunks": len(runs),
            "steps": items[0].settings.total_steps,
        }
        for ((programs, mask), items), runs in zip(buckets.items(), bucket_chunks, strict=True)
    ]
    if pulled:
        check_one_shape(summary)
    _refuse_other_checkpoints(out / CHECKPOINTS, chunks)
    if pulled:
        _refuse_stale_frames(out / CHECKPOINTS, chunks)
    plan = BatchReport([], skipped, failed, summary, {"total": time.perf_counter() - t0})
    if on_plan is not None:
        on_plan(plan)
    if dry_run:
        return plan
    written: list[tuple[int, Path]] = []  # by position: chunks run bucket by bucket
    timings = {"compile": 0.0, "optimize": 0.0}
    bar = progress_bar(progress, total=len(ready), desc="batch", unit="job")
    steps_run = 0
    painted: dict[int, np.ndarray] = {}  # with a pull: the last chunk's frames
    with bar:
        for chunk in chunks:
            shown = _shown(callback, callback_every, steps_run, chunk)
            pull = None
            if pulled:
                pull = (*pulled, _painted_before(chunk[0], done, painted))
            result = _run_chunk(chunk, params, mesh, out, checkpoint_every, driver, shown, pull)
            if pulled:
                painted = {
                    item.position: image for item, image in zip(chunk, result.images, strict=True)
                }
                done.update((item.position, item) for item in chunk)
            steps_run += chunk[0].settings.total_steps
            for i in result.local:  # with jax.distributed: this process's jobs
                _write(chunk[i], result, i, params)
                written.append((chunk[i].position, chunk[i].output))
            timings["compile"] += result.timings["compile"]
            timings["optimize"] += result.timings["optimize"]
            bar.update(len(chunk))
    _remove_checkpoints(out / CHECKPOINTS, chunks)  # every chunk finished
    timings["total"] = time.perf_counter() - t0
    return BatchReport([p for _, p in sorted(written)], skipped, failed, summary, timings)


def check_options(
    settings: dict,
    *,
    preset: str,
    batch_size: int,
    checkpoint_every: int,
    devices: Sequence[jax.Device] | None,
    split_image: bool | int,
    driver: str,
    callback: Callable | None,
    callback_every: int,
    on_plan: Callable | None,
    temporal_weight: float,
    motion: str,
) -> tuple[tuple[float, str] | None, Mesh]:
    """Refuse a bad option of :func:`batch` (any but the jobs, the output directory and
    the weights) before a row is read or a clip's frames are extracted: (the pull, (λ as
    a float, motion) or None for none; the mesh of the devices)."""
    check_batch_size(batch_size)
    check_every("checkpoint every", checkpoint_every)
    check_every("callback_every", callback_every)
    check_callback("callback", callback)
    check_callback("on_plan", on_plan)
    choose_driver(driver)  # a bad one before the rows are read and the steps compile
    temporal_weight = check_temporal_weight(temporal_weight)
    motion = check_motion(motion)
    mesh = cell_mesh(devices, split_image)
    _check_shared(preset, settings)
    init = settings.get("init")
    if init is not None and not named_init(init):
        as_image(init)  # unreadable: refused now (a dry run too), not as the first chunk starts
    return ((temporal_weight, motion) if temporal_weight else None), mesh


ALIKE = {
    "shape": "one shape",
    "pass_shapes": "the same coarse-to-fine passes",
    "conv_algorithm": "one convolution algorithm",
    "style_shapes": "style images of the same shapes (the MRF style loss)",
    "mask": "masks laid out alike (on every frame, or on none)",
}
"""What the frames of a clip must share to run as one program: a bucket's keys
(:attr:`BatchReport.buckets`), in words."""


def check_one_shape(buckets: list[dict]) -> None:
    """Refuse a plan's buckets (:attr:`BatchReport.buckets`) unless they are one: the
    frames of a clip run as one program; the message names what differs (:data:`ALIKE`)."""
    for key, words in ALIKE.items():
        values = list(dict.fromkeys(_in_words(b.get(key)) for b in buckets))
        if len(values) > 1:
            raise JaxstyleError(
                f"the frames of a clip must have {words}, not {' and '.join(values)}"
            )
    if len(buckets) > 1:  # alike in all a plan shows: an earlier pass's program differs
        raise JaxstyleError("the frames of a clip must have the same coarse-to-fine passes")


def _in_words(value: Any) -> str:
    """A bucket's value as a message shows it: (H, W) as WxH, several shapes joined by
    "+", None as none."""
    if value is None or isinstance(value, str):
        return value or "none"
    if isinstance(value[0], (tuple, list)):
        return "+".join(map(_in_words, value))
    return f"{value[1]}x{value[0]}"


def _check_shared(preset: str, settings: dict) -> None:
    """Refuse a bad shared setting for the whole batch, except where coarse-to-fine
    sizes disagree only with the shared size (or its absence): rows may give their
    own sizes, so each row is checked with its own (a row error if it still fails)."""
    try:
        resolve_settings(preset, **settings)
    except JaxstyleError:
        if not settings.get("coarse_to_fine"):
            raise
        passes = {"coarse_to_fine": None, "coarse_to_fine_steps": None}
        resolve_settings(preset, **{**settings, **passes})  # any other bad setting


def _buckets(ready: list[_Ready]) -> dict[tuple, list[_Ready]]:
    """The jobs by program (per pass: shape, convolution algorithm and, with an
    MRF style loss, whose targets hold their patches, the style images' shapes)
    and mask layout, in order: a chunk's stacked targets share one tree of shapes."""
    buckets: dict[tuple, list[_Ready]] = {}
    for item in ready:
        buckets.setdefault((item.programs, item.mask), []).append(item)
    return buckets


def _chunks(
    items: list[_Ready], batch_size: int, *, pulled: bool, saved: list[list]
) -> list[list[_Ready]]:
    """A bucket's jobs in chunks of at most ``batch_size`` (``pulled``: runs of consecutive
    frames), in order; a chunk that an interrupted run saved (``saved``: each one's job
    fingerprints, :func:`_saved_chunks`) is formed again where all its jobs are here, so
    that it resumes even when other jobs joined the run (an output deleted to redo it)."""
    chunks, rest = [], list(items)
    for fingerprints in saved:
        chunk, left = [], list(rest)
        for fingerprint in fingerprints:
            found = next((item for item in left if item.fingerprint == fingerprint), None)
            if found is None:
                break
            chunk.append(found)
            left.remove(found)
        if len(chunk) == len(fingerprints) <= batch_size and (
            not pulled or len(_consecutive(chunk)) == 1
        ):
            chunks.append(chunk)
            rest = left
    chunks += [
        run[start : start + batch_size]
        for run in (_consecutive(rest) if pulled else [rest])
        for start in range(0, len(run), batch_size)
    ]
    return sorted(chunks, key=lambda chunk: chunk[0].position)


def _saved_chunks(root: Path) -> list[list]:
    """The job fingerprints of each chunk whose state an interrupted run saved under
    ``root`` (from its ``run.json``, of a pass holding a checkpoint)."""
    saved = []
    for record in sorted(root.glob("*/**/run.json")) if root.is_dir() else []:
        if any(STEP.match(p.name) for p in record.parent.iterdir()):
            jobs = recorded_fingerprint(record, "jobs")
            if isinstance(jobs, list) and jobs not in saved:
                saved.append(jobs)
    return saved


def _chunk_key(chunk: list[_Ready]) -> str:
    """The name of a chunk's checkpoint directory: a digest of its jobs' fingerprints."""
    return json_digest([item.fingerprint for item in chunk])


def _refuse_other_checkpoints(root: Path, chunks: list[list[_Ready]]) -> None:
    """Refuse to run while ``root`` holds the saved state of a chunk that this run
    does not run (other settings, rows, inputs or batch size): it would be deleted."""
    if not root.is_dir():
        return
    mine = {_chunk_key(chunk) for chunk in chunks}
    for path in root.iterdir():
        if path.name not in mine and _holds_state(path):
            raise JaxstyleError(
                f"checkpoint {root} was written by a run with other settings, jobs or "
                "batch size; rerun with those, or delete the checkpoint directory to start over"
            )


def _holds_state(path: Path) -> bool:
    """True if a chunk's checkpoint directory holds a saved step (of any pass)."""
    return any(STEP.match(p.name) for p in path.rglob("step_*"))


def _refuse_stale_frames(root: Path, chunks: list[list[_Ready]]) -> None:
    """Refuse to run a clip's frames while a chunk's saved state follows a frame that this
    run paints again (its output deleted): those frames were pulled towards the frame as it
    was, so the chunk would be refused once that frame is painted anew, not before."""
    painted = {item.position: item for chunk in chunks for item in chunk}
    for chunk in chunks:
        before = painted.get(chunk[0].position - 1)
        if before is not None and _holds_state(root / _chunk_key(chunk)):
            raise JaxstyleError(
                f"checkpoint {root / _chunk_key(chunk)} holds frames pulled towards "
                f"{before.output} as it was painted, and this run paints it again; delete "
                "the checkpoint to paint them again too"
            )


def _remove_checkpoints(root: Path, chunks: list[list[_Ready]]) -> None:
    """Remove the checkpoints of this run's ``chunks`` under ``root``, and ``root``
    once empty; another run's (a second manifest into the same output) are kept."""
    for chunk in chunks:
        shutil.rmtree(root / _chunk_key(chunk), ignore_errors=True)
    with contextlib.suppress(OSError):
        root.rmdir()


def _check(
    job: Job,
    out: Path,
    preset: str,
    shared: dict,
    params: VGG19Weights,
    pulled: tuple[float, str] | None = None,
    position: int = 0,
    rows: int = 1,
) -> _Ready:
    """Resolve a job's settings, load its images and check its output, or raise; the
    job is the ``position``-th, a frame pulled towards its neighbours with ``pulled``:
    (λ, motion), or None (none); its rows split over ``rows`` devices."""
    if pulled and job.content is None:
        raise JaxstyleError("a frame of a clip needs a content image (not a texture)")
    overrides = {**shared, **job.overrides}
    init, texture = texture_overrides(
        job.content, overrides.pop("init", None), job.overrides.get("content_weight")
    )
    overrides.update(texture)
    s = resolve_settings(preset, init=init, **overrides)
    content, styles, original = prepare_images(job.content, list(job.styles), s, rows=rows)
    shape = tuple(output_shape(content, styles))
    passes, programs = (s,), ((shape, s.conv_algorithm, _patches(s, styles)),)
    if s.coarse_to_fine:  # each pass resolved at its size, as stylize does
        passes = tuple(
            resolve_settings(preset, init=init, **{**overrides, **s.pass_overrides(*q)})
            for q in s.passes
        )
        programs = tuple(_program(job, ps, rows) for ps in passes[:-1]) + programs
    fingerprint = {
        "settings": dataclasses.asdict(s),
        "content": None if content is None else array_digest(content),
        "styles": [array_digest(x) for x in styles],
        **({} if original is None else {"original": array_digest(original)}),
        "weights": params.name,
        **({} if pulled is None else {"temporal_weight": pulled[0], "motion": pulled[1]}),
    }
    mask = prepare_mask(job.mask, shape, len(styles), s)
    if mask is not None:
        fingerprint["mask"] = array_digest(mask)
    output = out / job.output
    inputs = [p for p in (job.content, *job.styles, *_masks(job)) if p]
    image_io.check_output_path(output, inputs, named=False)  # a name in the manifest, not a path
    fingerprint = as_json(fingerprint)
    return _Ready(job, s, passes, programs, fingerprint, output, _mask_layout(mask), position)


def _program(job: Job, s: Settings, rows: int) -> tuple:
    """What shapes a pass's program for this job: (image shape, convolution
    algorithm, :func:`_patches`), its rows split over ``rows`` devices."""
    content, styles, _ = prepare_images(job.content, list(job.styles), s, rows=rows)
    return (tuple(output_shape(content, styles)), s.conv_algorithm, _patches(s, styles))


def _patches(s: Settings, styles) -> tuple | None:
    """The style images' shapes where the targets hold their patches (MRF), else None."""
    return tuple(x.shape[:2] for x in styles) if s.style_loss == "mrf" else None


def _masks(job: Job) -> tuple[Path, ...]:
    """A job's mask files."""
    return job.mask if isinstance(job.mask, tuple) else (() if job.mask is None else (job.mask,))


def _mask_layout(mask: np.ndarray | None) -> str | None:
    """None (no mask), "shared" ((H, W): every style's) or "per style (S)" ((S, H, W))."""
    if mask is None:
        return None
    return "shared" if mask.ndim == 2 else f"per style ({len(mask)})"


def _finished(item: _Ready) -> bool:
    """True if an earlier run wrote this job's output; False if there is none or only
    this job's record (its image deleted: the job is redone); raises if a file in the
    way was not written by this job (it is never overwritten)."""
    record = item.output.with_suffix(".json")
    recorded = recorded_fingerprint(record)
    if recorded == item.fingerprint:
        return item.output.exists()
    existing = item.output if item.output.exists() else record
    if not existing.exists():
        return False
    whose = "jaxstyle" if recorded is None else "this job's settings"
    raise JaxstyleError(f"{existing} exists and was not written by {whose}; not overwriting it")


def _shown(callback, every: int, steps_run: int, chunk: list[_Ready]) -> Callable | None:
    """``_run_chunk``'s ``shown(i)``: pass i's ``CellPlan.run`` callback options,
    calling ``callback`` with the steps numbered on from ``steps_run`` over the
    chunk's passes, and the chunk's outputs (None: no callback)."""
    if callback is None:
        return None
    outputs = [item.output for item in chunk]

    def shown(i: int, originals: list) -> dict:
        before = steps_run + chunk[0].settings.pass_starts[i]

        def report(step, losses, images):
            images = [restore_colors(x, o) for x, o in zip(images, originals, strict=True)]
            callback(before + step, losses, np.stack(images), outputs)

        return {"callback": report, "callback_every": every}

    return shown


def _run_chunk(chunk, params, mesh, out: Path, every: int, driver: str, shown=None, pull=None):
    """Optimise a chunk of same-shaped jobs as one vmapped, checkpointed run; with
    coarse-to-fine, a run per pass, each job starting from its result of the pass
    before (a finished pass's last state kept, as in a sweep); ``shown`` as made
    by :func:`_shown`; ``pull``: (λ, motion, the frame painted before the chunk and its
    job, or None) for the consecutive frames of a clip (:mod:`jaxstyle.temporal`), or None."""
    fingerprint: dict = {"jobs": [item.fingerprint for item in chunk]}
    if pull is not None and pull[2] is not None:
        fingerprint["painted_before"] = array_digest(pull[2][0])
    checkpoint = Checkpointing(out / CHECKPOINTS / _chunk_key(chunk), fingerprint, every)
    passes = len(chunk[0].passes)
    results, previous, originals = [], None, []
    for i in range(passes):
        pass_checkpoint = checkpoint.for_pass(i, passes)
        result, originals = _run_pass(
            chunk, i, previous, params, mesh, pass_checkpoint, driver, shown, pull
        )
        results.append(result)
        previous = result.images
    checkpoint.clear()
    result = join_passes(results)
    recoloured = [
        restore_colors(x, original) for x, original in zip(result.images, originals, strict=True)
    ]
    return dataclasses.replace(result, images=np.stack(recoloured))


def _run_pass(
    chunk,
    i: int,
    previous,
    params,
    mesh,
    checkpoint: Checkpointing,
    driver: str,
    shown=None,
    pull=None,
):
    """Pass ``i`` of a chunk's jobs, each starting from its image of ``previous``
    (N, h, w, 3) or, in the first pass, from its own start: (the result, in the
    colours the optimisation sees, and each job's :attr:`Images.original`); ``pull``
    as for :func:`_run_chunk`."""
    settings = [item.passes[i] for item in chunk]
    s = settings[0]
    p = get_preset(s.preset)
    objective = s.objective(p)
    rows = mesh.shape[ROWS]  # each job's rows split over as many devices
    images = [  # read again (not kept from _check): memory holds one chunk's images
        prepare_images(item.job.content, list(item.job.styles), ps, rows=rows)
        for item, ps in zip(chunk, settings, strict=True)
    ]
    shape = chunk[0].programs[i][0]
    style_shapes = [img.shape[:2] for _, styles, _ in images for img in styles]
    cells = cells_per_device(len(chunk), cell_groups(mesh))
    kernels = objective.winograd_kernels(shape, style_shapes, cells)
    starts, targets = [], []
    for j, (item, ps, (content, styles, _)) in enumerate(zip(chunk, settings, images, strict=True)):
        start = ps.init if previous is None else previous[j]
        grey = ps.preserve_colors == "luminance"
        starts.append(initial_image(start, content, shape, ps.seed, grey=grey))
        # not cached: a batch's many targets would push the compiled programs out of
        # the disk cache's size limit (a 512 px job's take 9 MB)
        mask = prepare_mask(item.job.mask, shape, len(styles), ps)
        targets.append(
            prepare_targets(
                params, objective, content, styles, ps, kernels=kernels, mask=mask, cache=False
            )
        )
    plan_type = CellPlan
    if pull is not None:
        contents = [c for c, _, _ in images if c is not None]  # all: _check refuses textures
        before = None if pull[2] is None else _before_pass(pull[2], ps, shape, rows)
        targets = frame_targets(targets, contents, weight=pull[0], previous=before, motion=pull[1])
        plan_type = TemporalPlan
    plan = plan_type.create(
        params=params,
        objective=objective,
        config=s.optimizer_config(p),
        steps=s.steps,
        starts=starts,
        weights=[ps.loss_weights() for ps in settings],
        targets=targets,
        per_cell_targets=True,
        mesh=mesh,
        kernels=kernels,
    )
    originals = [img.original for img in images]
    options = shown(i, originals) if shown else {}
    result = plan.run(driver=driver, checkpoint=checkpoint, desc="chunk", **options)
    return result, originals


def _positions(rows: Sequence, jobs: Sequence[Job]) -> list[int]:
    """Each job's place among ``rows`` (every row in order, the refused ones too; the
    jobs among them, in order): a row refused while reading keeps its place, so that
    the frames either side of it are not consecutive."""
    places, rest = [], iter(jobs)
    job = next(rest, None)
    for i, row in enumerate(rows):
        if row is job:
            places.append(i)
            job = next(rest, None)
    return places


def _consecutive(items: list[_Ready]) -> list[list[_Ready]]:
    """``items`` split into runs of consecutive jobs (by position)."""
    runs: list[list[_Ready]] = []
    for item in items:
        if runs and runs[-1][-1].position == item.position - 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _painted_before(
    first: _Ready, done: dict[int, _Ready], painted: dict[int, np.ndarray]
) -> tuple[np.ndarray, Job] | None:
    """The frame painted before ``first`` (H, W, 3) in [0, 1], as its file holds it (a
    JPEG's loss too), and its job: from ``painted`` (the chunk just run, by position),
    else from the file of a job ``done`` (by position) by an earlier run with these
    settings (:func:`_finished`); None for the first frame, or one not painted with these
    settings (a bad row: an old file at its output is another run's)."""
    item = done.get(first.position - 1)
    if item is None:
        return None
    if item.position in painted:
        image = image_io.as_saved(painted[item.position], item.output)
    else:
        image = image_io.load_image(item.output)
    return image, item.job


def _before_pass(
    before: tuple[np.ndarray, Job], s: Settings, shape: tuple[int, int], rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The painted frame before a chunk and its content frame as a pass sees them: at
    its ``shape`` (rows split over ``rows`` devices) and, with
    ``preserve_colors="luminance"``, grey."""
    image, job = before
    content, _, original = prepare_images(job.content, list(job.styles), s, rows=rows)
    image = image_io.resize_to(image, shape)
    if original is not None and s.preserve_colors == "luminance":
        image = np.asarray(luminance_image(image))
    return image, np.asarray(content)


def _write(item: _Ready, result, i: int, params: VGG19Weights) -> None:
    """Write job ``i`` of a chunk's result: its record, then the image (a rerun redoes
    a job whose record is there without its image: a write that failed between)."""
    from jaxstyle.provenance import record_text, run_metadata

    record = {
        "output": str(item.output),
        "manifest_line": item.job.line,
        "inputs": {
            "content": None if item.job.content is None else str(item.job.content),
            "styles": [str(p) for p in item.job.styles],
            "mask": mask_record(item.job.mask),
        },
        "settings": dataclasses.asdict(item.settings),
        "weights": params.name,
        "final_losses": {k: float(v[i]) for k, v in result.final.items()},
        "history": {k: np.asarray(v[i]).tolist() for k, v in result.history.items()},
        "chunk_timings": result.timings,
        "sharded_over": result.devices,
        "split_image": result.split_image,
        "fingerprint": item.fingerprint,
        **run_metadata(),
    }
    image_io.write_text_atomic(item.output.with_suffix(".json"), record_text(record))
    image_io.save_image(item.output, result.images[i], overwrite=True)  # _finished checked
