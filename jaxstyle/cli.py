"""The ``jaxstyle`` command line: a thin layer over the Python API (its arguments:
:mod:`jaxstyle.cli_parser`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxstyle.cli_parser import build_parser
from jaxstyle.errors import Interrupted, JaxstyleError, brief, stopped_by

if TYPE_CHECKING:
    from jaxstyle.recorded import RunRecord

EXIT_USAGE = 2
EXIT_JOBS_FAILED = 1


def default_size() -> int:
    """The CLI's default longest side: 512 px on accelerators, 256 px on a CPU (where a
    512 px L-BFGS step takes several seconds)."""
    import jax

    return 256 if jax.default_backend() == "cpu" else 512


SETTINGS = (
    "size",
    "steps",
    "optimizer",
    "learning_rate",
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layers",
    "style_layers",
    "style_layer_weights",
    "pooling",
    "seed",
    "style_scale",
    "style_blend",
    "compute_dtype",
    "conv_algorithm",
    "preserve_colors",
    "tileable",
)
"""The parsed options passed to the API as setting overrides."""

COARSE_TO_FINE = ("coarse_to_fine", "coarse_to_fine_steps")
"""The coarse-to-fine settings of stylize, sweep and batch."""

PROGRAM_SETTINGS = (
    "optimizer",
    "content_layers",
    "style_layers",
    "pooling",
    "compute_dtype",
    "conv_algorithm",
    "tileable",
)
"""The setting overrides of ``estimate``: those that shape the compiled step."""


@dataclasses.dataclass
class _Inputs:
    """The images of a run from IMAGE..., --texture and --init (None: the built-in example)."""

    paths: list[Path]
    content: Path | None
    styles: Sequence[Path | None]
    init: str | Path | None
    files: list[Path]  # every input file, for the output checks
    texture: bool = False
    masks: list[Path] = dataclasses.field(default_factory=list)

    @property
    def mask(self) -> Path | Sequence[Path] | None:
        """The API's ``mask``: one for all styles, or a list of one per style."""
        return self.masks[0] if len(self.masks) == 1 else (self.masks or None)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Inputs:
        paths = [Path(p) for p in args.images]
        if args.texture:
            content, styles = None, paths or [None]
        elif len(paths) == 1:
            raise JaxstyleError(
                "give CONTENT and at least one STYLE image (or none for the example)"
            )
        else:
            content, styles = (paths[0], paths[1:]) if paths else (None, [None])
        init = args.init
        masks = args.mask or []
        files = [p for p in [content, *styles, *masks] if p is not None]
        if init not in (None, "content", "noise"):
            files.append(Path(init))
            init = Path(init)
        return cls(paths, content, styles, init, files, args.texture, masks)

    def images(self) -> tuple:
        """(content, styles) with the built-in example images in place of None."""
        from jaxstyle import examples

        content = self.content
        if not self.paths and self.texture:
            print(
                "jaxstyle: no images given: synthesising the texture of jaxstyle's built-in "
                "swirl painting",
                file=sys.stderr,
            )
        elif not self.paths:
            print(
                "jaxstyle: no images given: painting matplotlib's sample photo (Grace Hopper) "
                "in jaxstyle's built-in swirl painting",
                file=sys.stderr,
            )
            content = examples.example_content()
        return content, [examples.example_style() if s is None else s for s in self.styles]

    def record(self, init: str) -> dict:
        """The inputs as JSON; ``init`` is the resolved init setting."""
        example = "example photo" if not self.paths and not self.texture else None
        from jaxstyle.inputs import mask_record

        return {
            "content": str(self.content) if self.content is not None else example,
            "styles": [str(s) if s is not None else "example painting" for s in self.styles],
            "init": str(self.init) if self.init is not None else init,
            "mask": mask_record(self.mask),
        }


def _take_record(args: argparse.Namespace) -> RunRecord:
    """Fill in what the command line leaves out from ``--from``'s record (see
    :func:`jaxstyle.recorded.recorded_run`, which does the same in Python); returns it."""
    from jaxstyle.recorded import EXAMPLE_CONTENT, EXAMPLE_STYLE, read_run_record

    record = read_run_record(args.from_result)
    record.check_weights(args.weights)
    names = ("preset", *SETTINGS, *COARSE_TO_FINE)
    given = {k: getattr(args, k) for k in names}
    texture = args.texture or (not args.images and record.content is None)
    settings = record.settings_with(given, texture=texture)
    for name in names:
        setattr(args, name, settings.get(name))
    anew = {k for k, v in {"style": args.images, "mask": args.mask, "init": args.init}.items() if v}
    new = bool(args.images) or (args.texture and record.content is not None)  # a picture's
    inputs = record.inputs(new_content=new, given=anew, texture=args.texture)  # texture: no mask
    if not args.images:
        styles = [] if inputs["style"] == [EXAMPLE_STYLE] else [Path(s) for s in inputs["style"]]
        if args.texture or inputs["content"] is None:
            args.texture, args.images = True, styles
        elif inputs["content"] != EXAMPLE_CONTENT:
            args.images = [Path(inputs["content"]), *styles]
    if not args.mask:
        masks = inputs["mask"] if isinstance(inputs["mask"], list) else [inputs["mask"]]
        args.mask = [Path(m) for m in masks if m is not None] or None
    args.init = args.init or inputs["init"]
    _check_learning_rate(args, given["learning_rate"])  # the recorded run's optimiser, or given
    return record


def cmd_stylize(args: argparse.Namespace) -> int:
    from jaxstyle import images as image_io
    from jaxstyle.presets import DEFAULT_PRESET
    from jaxstyle.provenance import record_text
    from jaxstyle.settings import resolve_settings
    from jaxstyle.stylize import step_image_path, step_image_saver, stylize

    source = None
    if args.from_result is not None:
        source = _take_record(args)  # its size too: None is the content's own
    elif args.size is None:
        args.size = default_size()
    if args.save_every < 0:
        raise JaxstyleError("--save-every must be >= 0")
    inputs = _Inputs.from_args(args)
    overrides = {k: getattr(args, k) for k in (*SETTINGS, *COARSE_TO_FINE)}
    settings = resolve_settings(args.preset or DEFAULT_PRESET, **overrides)  # fail fast
    every, passes, starts = args.save_every, settings.passes, settings.pass_starts
    numbers = [
        a + k
        for a, (_, n) in zip(starts, passes, strict=True)
        for k in (range(every, n + 1, every) if every else ())
    ]
    saved = [step_image_path(args.output, n) for n in numbers]
    _check_stylize_outputs(args.output, saved, inputs.files)
    checkpoint_dir = _stylize_checkpoint(args.output)
    resumable = args.checkpoint_every is not None or checkpoint_dir.exists()
    content, style_images = inputs.images()

    from jaxstyle.weights import load_vgg19

    weights = load_vgg19(args.weights)
    devices = _split_devices(args)
    if source is not None:
        source.note_split(len(devices or ()) or 1)
    record_path = args.output.with_suffix(".json")
    save = step_image_saver(args.output, overwrite=True)  # checked above: an earlier run's, or ours
    unfinished = {
        "output": str(args.output),
        "status": "unfinished: interrupted, or failed before writing this record",
        "settings": dataclasses.asdict(settings),
    }

    def save_step(step: int, losses: dict, image) -> None:
        if not record_path.exists():  # claims the outputs before the first is written, so that
            # a rerun replaces what a run interrupted or failing leaves (bad input: nothing)
            image_io.write_text_atomic(record_path, record_text(unfinished))
        save(step, losses, image)

    hooks = [(every, save_step)] if every else []
    title = f"jaxstyle stylize {args.output.name}"
    with _live_view(args, title, settings.total_steps, _captioned(content, style_images)) as live:
        if live:
            hooks.append((args.live_every, live.update))
        try:
            result = stylize(
                content,
                style_images,
                preset=args.preset or DEFAULT_PRESET,
                weights=weights,
                driver=args.driver,
                progress=not args.quiet,
                init=inputs.init,
                mask=inputs.mask,
                devices=devices,
                **_every(hooks, starts),
                checkpoint_dir=checkpoint_dir if resumable else None,
                checkpoint_every=args.checkpoint_every or 0,
                **overrides,
            )
        except KeyboardInterrupt as err:  # SIGTERM too (_Terminated)
            raise _stopped(err, saved, resumable) from None
        result.save(
            args.output,
            record={
                "inputs": inputs.record(result.settings.init),
                **({"from": str(args.from_result)} if args.from_result else {}),
                **({"split_over_devices": [str(d) for d in devices]} if devices else {}),
            },
            overwrite=True,  # checked above: an earlier run's, or this one's unfinished record
        )
        if live:
            live.finish(settings.total_steps, result.final, result.image)
    if resumable:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the outputs are written
    f = result.final
    steps = [n for _, n in passes]
    each = steps[0] if len(set(steps)) == 1 else "+".join(map(str, steps))
    run = f"{len(steps)} passes of {each} steps" if len(steps) > 1 else f"{each} steps"
    if sum(steps):  # no rate without a step
        run += f", {result.timings['ms_per_step']:.0f} ms/step"
    if result.resumed_from:
        run += f", resumed at step {result.resumed_from}"
    print(
        f"wrote {args.output} ({result.image.shape[1]}x{result.image.shape[0]}, {run}; "
        f"losses: content {f['content']:.4g}, style {f['style']:.4g}, tv {f['tv']:.4g})"
    )
    return 0


def _stopped(err: KeyboardInterrupt, saved: list[Path], resumable: bool) -> Interrupted:
    """A stylize run's signal as one line: no output written, the step images kept,
    and (unless it was) how to make a run resumable."""
    signum = _signal(err)
    existing = set(os.listdir(saved[0].parent)) if saved and saved[0].parent.is_dir() else set()
    kept = [p.name for p in saved if p.name in existing]
    message = f"{stopped_by(signum)}: no output written"
    if kept:
        names = kept[0] if len(kept) == 1 else f"{kept[0]} .. {kept[-1]} ({len(kept)} files)"
        message += f"; kept the step images {names}: the same command replaces them"
    if not resumable:
        message += " (--checkpoint-every N makes a run resumable)"
    return Interrupted(message, signum)


def _signal(err: KeyboardInterrupt) -> int:
    """The signal that raised ``err``: SIGTERM (:class:`_Terminated`) or SIGINT."""
    return signal.SIGTERM if isinstance(err, _Terminated) else signal.SIGINT


def _check_learning_rate(args: argparse.Namespace, given: float | None) -> None:
    """``--lr`` (``given``) sets Adam's step: refused where the run's optimiser (``args``'
    optimizer, else its preset's) is L-BFGS."""
    if given is None:
        return
    from jaxstyle.presets import DEFAULT_PRESET, get_preset

    if (args.optimizer or get_preset(args.preset or DEFAULT_PRESET).optimizer) == "lbfgs":
        raise JaxstyleError(
            "--lr is Adam's step size; L-BFGS takes none (its line search picks the step): "
            "add --optimizer adam or drop --lr"
        )


def _check_live(args: argparse.Namespace) -> None:
    if args.live_every is not None and args.live is None:
        raise JaxstyleError("--live-every goes with --live [HOST:]PORT (the page it updates)")
    args.live_every = 10 if args.live_every is None else args.live_every
    if args.live_every < 1:
        raise JaxstyleError("--live-every must be >= 1")
    if args.live is not None and getattr(args, "distributed", False):
        raise JaxstyleError("--live serves one process's run; it does not go with --distributed")


def _live_view(
    args: argparse.Namespace, title: str, total_steps: int | None, inputs: dict | None = None
):
    """``--live``'s started :class:`LiveView` (its address printed), or a null context."""
    if args.live is None:
        return contextlib.nullcontext()
    from jaxstyle.live_view import LiveView

    host, port = args.live
    view = LiveView(host, port, title=title, total_steps=total_steps, inputs=inputs)
    print(f"jaxstyle: live view at {view.url}", file=sys.stderr, flush=True)
    return view


def _captioned(content, styles: list) -> dict:
    """The live view's input thumbnails: {"content": ..., "style" (or "style i"): ...}."""
    captions = ["style"] if len(styles) == 1 else [f"style {i + 1}" for i in range(len(styles))]
    return {
        **({} if content is None else {"content": content}),
        **dict(zip(captions, styles, strict=True)),
    }


def _every(hooks: list[tuple[int, Callable]], starts: Sequence[int]) -> dict[str, Any]:
    """``stylize``'s callback options calling each (every, hook) after every
    ``every``-th step of each pass; ``starts``: the steps run before each pass."""
    if not hooks:
        return {"callback": None, "callback_every": 0}

    def callback(step, losses, image):
        in_pass = step - max(s for s in starts if s < step)
        for every, hook in hooks:
            if in_pass % every == 0:
                hook(step, losses, image)

    return {"callback": callback, "callback_every": math.gcd(*(n for n, _ in hooks))}


def _split_devices(args: argparse.Namespace) -> list | None:
    """``--split-image [N]``'s devices: N local ones, or all (None without it, or one)."""
    if args.split_image is False:
        return None
    import jax

    from jaxstyle.split_image import rows_per_image

    devices = jax.local_devices()
    rows = rows_per_image(args.split_image, len(devices))
    return devices[:rows] if rows > 1 else None


def _stylize_checkpoint(output: Path) -> Path:
    """``stylize --checkpoint-every``'s directory: .OUT.jaxstyle-checkpoint beside OUT
    (a sweep's or batch's :data:`~jaxstyle.resume.CHECKPOINTS`, named for OUT)."""
    from jaxstyle.resume import CHECKPOINTS

    return output.with_name(f".{output.name}{CHECKPOINTS}")


def _check_stylize_outputs(output: Path, intermediate: list[Path], inputs: list[Path]) -> None:
    """Refuse outputs that would replace an input or a file jaxstyle did not write.
    The image and its intermediate images may replace those of an earlier run with
    the same output, known by its record ``OUT.json``; nothing else is replaced."""
    from jaxstyle import images as image_io

    image_io.check_output_path(output, inputs)  # the directory, suffix and inputs
    record = output.with_suffix(".json")
    ours = _is_run_record(record, output)
    if record.exists() and not ours:
        raise JaxstyleError(
            f"{record} exists and is not the run record of {output.name}; not overwriting it "
            "(choose another output name)"
        )
    existing = set(os.listdir(output.parent)) if output.parent.is_dir() else set()
    for path in [output, *intermediate]:
        if path.name not in existing:  # one listing: --save-every 1 names every step
            continue
        image_io.check_output_path(path, inputs)  # only an existing file can be an input
        if not ours:
            raise JaxstyleError(
                f"{path} exists and was not written by jaxstyle; not overwriting it"
            )


def _is_run_record(record: Path, output: Path) -> bool:
    """True if ``record`` is the JSON record ``jaxstyle stylize`` wrote for ``output``."""
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    named = found.get("output") if isinstance(found, dict) else None
    return isinstance(named, str) and Path(named).name == output.name and "settings" in found


def cmd_sweep(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle import images as image_io
    from jaxstyle.presets import DEFAULT_PRESET
    from jaxstyle.resume import CHECKPOINTS, recorded_fingerprint
    from jaxstyle.sweep import plan_sweep
    from jaxstyle.sweep_output import SUMMARY_FILES, cell_files, refuse_existing, write_sweep

    if args.from_result is not None:
        source = _take_record(args)  # its size too: None is the content's own
        source.note_split(len(_split_devices(args) or ()) or 1)
    elif args.size is None:
        args.size = default_size()
    out = image_io.check_output_dir(args.output)
    inputs = _Inputs.from_args(args)
    content, style_images = inputs.images()
    plan = plan_sweep(
        content,
        style_images,
        preset=args.preset or DEFAULT_PRESET,
        weights=args.weights,
        init=inputs.init,
        mask=inputs.mask,
        split_image=args.split_image,
        batch_size=args.batch_size,
        **{k: getattr(args, k) for k in (*SETTINGS, *COARSE_TO_FINE)},
    )
    recorded = recorded_fingerprint(out / "sweep.json")
    if recorded == plan.fingerprint:  # this sweep's files: redone if any is missing
        names = [*cell_files(plan.cells, plan.axes), *SUMMARY_FILES]
        missing = [name for name in names if not (out / name).exists()]
        if not missing:
            # a run killed between writing its files and removing its checkpoint left it
            plan.checkpointing(out / CHECKPOINTS).clear()
            print(f"{out} already holds this finished sweep: nothing to do")
            return 0
        print(f"{out} holds this finished sweep but not {', '.join(missing)}: running it again")
    elif (out / "sweep.json").exists():
        if recorded is None:
            raise JaxstyleError(f"{out / 'sweep.json'} exists; not overwriting it")
        raise JaxstyleError(
            f"{out} holds a finished sweep with other settings; choose another output directory"
        )
    checkpoint = plan.checkpointing(out / CHECKPOINTS, args.checkpoint_every)
    for name in [*cell_files(plan.cells, plan.axes), "grid.png"]:
        image_io.check_output_path(out / name, inputs.files, named=False)
    # an interrupted run's files are its own, and a finished one's
    if not checkpoint.directory.exists() and recorded != plan.fingerprint:
        refuse_existing(out, plan.cells, plan.axes)
    runs = plan.cell_runs()
    steps = plan.settings.total_steps * len(runs)  # one run of cells after another
    title = f"jaxstyle sweep {out.name}"
    with _live_view(args, title, steps, _captioned(content, style_images)) as live:
        show = live.sweep_callback(plan.cells, plan.axes) if live else None
        result = plan.run(
            driver=args.driver,
            progress=not args.quiet,
            desc="sweep",
            checkpoint=checkpoint,
            callback=show,
            callback_every=args.live_every if live else 0,
        )
        if show is not None:
            show(steps, result.final, result.images, finished=True)
    record = {
        "output": str(out),
        "inputs": inputs.record(result.settings.init),
        **({"from": str(args.from_result)} if args.from_result else {}),
        "fingerprint": plan.fingerprint,
    }
    write_sweep(result, out, record=record, overwrite=True)  # files checked above
    checkpoint.clear()
    h, w = result.images.shape[1:3]
    wrote = f"wrote {len(result.cells)} cells, grid.png, sweep.json and sweep.csv"
    if jax.process_count() > 1:  # jax.distributed: this process's share
        process = jax.process_index()
        summary = ", grid.png, sweep.json and sweep.csv" if process == 0 else ""
        wrote = f"process {process} of {jax.process_count()}: wrote cells {result.local}{summary}"
    resumed = f", resumed at step {result.resumed_from}" if result.resumed_from else ""
    if len(runs) > 1:  # resumed_from counts the steps taken up over the runs
        taken = f", {result.resumed_from} steps taken up" if result.resumed_from else ""
        resumed = f", in {len(runs)} runs of {runs[0][1]} cells{taken}"
    print(
        f"{wrote} to {out} ({w}x{h}, {result.settings.steps} steps, "
        f"{result.timings['ms_per_step']:.0f} ms/step for all cells on "
        f"{len(result.devices)} device(s)"
        f"{f', each image split over {result.split_image}' * (result.split_image > 1)}"
        f"{resumed})"
    )
    return 0


def _batch_options(args: argparse.Namespace, live) -> dict[str, Any]:
    """The keywords of ``batch`` and ``animate`` from their shared options (``live``: the
    live view, or None): the run's, and the settings every job shares."""
    from jaxstyle.presets import DEFAULT_PRESET

    if args.size is None:
        args.size = default_size()
    settings = {k: getattr(args, k) for k in (*SETTINGS, *COARSE_TO_FINE)}
    if args.init is not None:
        settings["init"] = args.init
    return dict(
        preset=args.preset or DEFAULT_PRESET,
        weights=args.weights,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every,
        split_image=args.split_image,
        driver=args.driver,
        progress=not args.quiet,
        callback=live.batch_callback() if live else None,
        callback_every=args.live_every if live else 0,
        temporal_weight=args.temporal_weight,
        motion=args.motion,
        **settings,
    )


def _total_steps(plan) -> int:
    """The steps a batch plan runs, over its chunks (one after another)."""
    return sum(b["chunks"] * b["steps"] for b in plan.buckets)


def cmd_batch(args: argparse.Namespace) -> int:
    from jaxstyle.batch import batch

    title = f"jaxstyle batch {args.manifest.name}"
    view = contextlib.nullcontext() if args.dry_run else _live_view(args, title, None)
    with view as live:

        def planned(plan) -> None:  # the bad rows at once, not after the run
            for line, message in plan.failed:
                print(f"jaxstyle: {args.manifest}:{line}: {message}", file=sys.stderr)
            if live:
                live.set_total_steps(_total_steps(plan))

        options = _batch_options(args, live)
        report = batch(args.manifest, args.output, on_plan=planned, dry_run=args.dry_run, **options)
        if live:
            live.finish()
    shapes = ", ".join(f"{b['jobs']} at {b['shape'][1]}x{b['shape'][0]}" for b in report.buckets)
    if args.dry_run:
        jobs, chunks = (sum(b[k] for b in report.buckets) for k in ("jobs", "chunks"))
        done = f"dry run: would run {jobs} job(s) in {chunks} chunk(s) into {args.output}"
    else:
        done = f"wrote {len(report.written)} job(s) to {args.output}"
    print(
        done
        + (f" ({shapes})" if shapes else "")
        + (f"; {len(report.skipped)} already done" if report.skipped else "")
        + (f"; {len(report.failed)} failed (lines above)" if report.failed else "")
    )
    return EXIT_JOBS_FAILED if report.failed else 0


def cmd_animate(args: argparse.Namespace) -> int:
    from jaxstyle.animation import animate, frames_directory

    with _live_view(args, f"jaxstyle animate {args.output.name}", None) as live:

        def planned(plan) -> None:
            if live:
                live.set_total_steps(_total_steps(plan))

        options = _batch_options(args, live)
        result = animate(
            args.clip,
            args.styles,
            args.output,
            fps=args.fps,
            on_plan=planned,
            **options,
        )
        if live:
            live.finish()
    report = result.report
    if result.unchanged:
        print(f"{args.output} already holds this finished animation: nothing to do")
        return 0
    painted = f"painted {len(report.written)} frame(s)" + (
        f", {len(report.skipped)} painted before" if report.skipped else ""
    )
    if result.output is None:  # jax.distributed: the first process writes the animation
        print(f"{painted} into {frames_directory(args.output)}")
        return 0
    from jaxstyle import images as image_io

    seconds = sum(image_io.stored_durations(result.output, result.clip.durations)) / 1000
    print(
        f"wrote {result.output} ({len(result.frames)} frames, {seconds:.3g} s; {painted} "
        f"into {frames_directory(args.output)})"
    )
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from jaxstyle import images as image_io
    from jaxstyle.plot import plot_losses, read_histories

    image_io.check_output_path(args.output, [])  # a directory, a suffix
    if args.output.exists():
        raise JaxstyleError(f"{args.output} exists; not overwriting it")
    curves: dict = {}
    for record in args.records:
        for name, history in read_histories(record).items():
            key, n = name, 1
            while key in curves:  # a record given twice, or cells of the same name
                n += 1
                key = f"{record}: {name}" + (f" ({n})" if n > 2 else "")
            curves[key] = history
    plot_losses(curves, args.output)
    print(f"wrote {args.output} ({len(curves)} curve(s))")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    import textwrap

    from jaxstyle.presets import DEFAULT_PRESET, PRESETS, describe, get_preset

    # the sources' Σ, ½, ·: "?" where stdout cannot encode them (Windows' cp1252 in a file)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    for p in [get_preset(args.name)] if args.name else PRESETS.values():
        print(f"{p.name}{' (default)' * (p.name == DEFAULT_PRESET)}: {describe(p)}")
        source = textwrap.fill(p.source, width=88, initial_indent="  ", subsequent_indent="  ")
        print(source.encode(encoding, "replace").decode(encoding))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from jaxstyle.estimate import estimate
    from jaxstyle.presets import DEFAULT_PRESET

    e = estimate(
        default_size() if args.size is None and args.shape is None else args.size,
        shape=args.shape,
        batch=args.batch,
        mode=args.mode,
        preset=args.preset or DEFAULT_PRESET,
        weights=args.weights,
        split_image=args.split_image,
        **{k: getattr(args, k) for k in PROGRAM_SETTINGS},
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(e), indent=1))
        return 0

    def mib(n: int) -> str:
        return f"{n / 2**20:9.1f} MiB"

    def gflop(n: float | None) -> str:
        return "        -" if n is None else f"{n / 1e9:9.2f} GFLOP"

    print(
        f"one {e.optimizer} step, {e.height}x{e.width}, batch {e.batch}"
        f"{f' ({e.mode})' if e.batch > 1 else ''}, preset {e.preset}, "
        f"{e.compute_dtype}, {e.conv_algorithm} convolutions, "
        f"{e.backend} ({e.devices} device{'s' * (e.devices > 1)}"
        f"{f', each image split by rows over {e.split_image}' * (e.split_image > 1)}):"
    )
    rows = [
        ("arguments", mib(e.argument_bytes)),
        ("outputs", f"{mib(e.output_bytes)} ({mib(e.alias_bytes).strip()} in donated inputs)"),
        ("temporaries", mib(e.temp_bytes)),
        ("generated code", mib(e.generated_code_bytes)),
        ("  VGG19 weights", f"{mib(e.weight_bytes)} (of the arguments)"),
        ("peak estimate", f"{mib(e.peak_bytes)} per device"),
        ("FLOPs, XLA", gflop(e.xla_flops)),
        ("FLOPs, VGG convs", gflop(e.vgg_flops)),
    ]
    print("\n".join(f"  {name:<18}{value}" for name, value in rows))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from jaxstyle import weights

    if args.weights_command == "fetch":
        path = Path(args.weights) if args.weights else weights.default_location()
        existed = weights.is_weight_set(path)
        weights.fetch(path)
        print(f"{'already present' if existed else 'fetched'}: {path}")
        return 0
    from jaxstyle.convert import convert

    path = convert(args.source, args.output, preprocessing=args.preprocessing)
    print(f"converted {args.source} -> {path}")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside a sweep's or batch's checkpointed loop."""


@contextlib.contextmanager
def _sigterm_ends_the_command():
    """SIGTERM raises :class:`_Terminated` (as SIGINT raises KeyboardInterrupt), so it
    gets the same one-line message; sweeps and batches catch both to checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_jax() -> None:
    """Import jax and start its backend, a one-line error where the environment
    (``JAX_PLATFORMS``, a ``JAX_*`` flag) names one that cannot start here."""
    try:
        import jax

        jax.devices()
    except (RuntimeError, ValueError, AssertionError) as err:  # jax raises all three
        platforms = os.environ.get("JAX_PLATFORMS")
        named = "" if platforms is None else f"JAX_PLATFORMS={platforms!r} and "
        raise JaxstyleError(
            f"cannot start JAX ({brief(err)}); check {named}the JAX_* environment variables"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status; user errors print one line."""
    with _sigterm_ends_the_command():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "live"):
            _check_live(args)  # before --distributed joins the other processes
        if getattr(args, "from_result", None) is None:  # else its record's optimiser: after it
            _check_learning_rate(args, getattr(args, "learning_rate", None))
        if getattr(args, "checkpoint_every", None) is not None:  # stylize, sweep, batch
            from jaxstyle.settings import check_every

            check_every("checkpoint every", args.checkpoint_every)
        if getattr(args, "distributed", False):
            from jaxstyle.cells import initialize_distributed

            initialize_distributed()
        _start_jax()
        from jaxstyle.compiler import enable_compilation_cache

        enable_compilation_cache(run_label=f"cli {args.command}")
        if args.command == "stylize":
            return cmd_stylize(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "batch":
            return cmd_batch(args)
        if args.command == "animate":
            return cmd_animate(args)
        if args.command == "estimate":
            return cmd_estimate(args)
        if args.command == "plot":
            return cmd_plot(args)
        if args.command == "presets":
            return cmd_presets(args)
        return cmd_weights(args)
    except Interrupted as err:
        print(f"jaxstyle: {err}", file=sys.stderr)
        return err.exit_code
    except JaxstyleError as err:
        print(f"jaxstyle: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as err:  # SIGTERM too (_Terminated)
        print(f"jaxstyle: {stopped_by(_signal(err))}", file=sys.stderr)
        return 128 + _signal(err)
    except OSError as err:  # a path the system refuses where no check caught it (pathlib's
        if err.filename is None or err.strerror is None:  # exists() raises "File name too long")
            raise
        print(f"jaxstyle: error: cannot use {err.filename}: {err.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:
        if not _out_of_memory(err):
            raise
        print(f"jaxstyle: error: out of memory ({brief(err)}); {MEMORY_ADVICE}", file=sys.stderr)
        return EXIT_USAGE


MEMORY_ADVICE = (
    "try a smaller --size, --compute-dtype bfloat16, --split-image over several devices, or "
    "a smaller sweep or batch --batch-size; `jaxstyle estimate` prints what a size needs"
)
"""What the command line suggests when a run does not fit in memory."""


def _out_of_memory(err: Exception) -> bool:
    """Whether ``err`` is a failed allocation: XLA's RESOURCE_EXHAUSTED "Out of memory"
    on a device, or Python's MemoryError on the host."""
    text = str(err)
    return isinstance(err, MemoryError) or (
        text.startswith("RESOURCE_EXHAUSTED") and "out of memory" in text.lower()
    )


if __name__ == "__main__":
    sys.exit(main())
