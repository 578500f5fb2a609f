"""Each preset's temporal pull λ (``Preset.temporal_weight``): estimated, then checked.

``gradients``: the pull competes with the preset's own gradient, and its losses are
weighed otherwise than the jaxstyle preset's (whose λ, 1e4, was measured), so λ scales
with the ratio of the preset's ‖∇J‖ to the jaxstyle preset's at the same image (the
first frame of the clip below, or uniform noise: ``--at``).

``verify``: the clip (a still Tübingen, The Scream's figure moving across it) painted
with λ = 0 and with λ, the preset's own optimiser; prints the still-pixel change (the
mean |x_t+1 - x_t| over the pixels whose content frames agree, in [0, 1]) and the
style loss (mean over the frames) of each, and their ratios.

    python scripts/calibrate_temporal.py gradients --size 64 --at content
    python scripts/calibrate_temporal.py verify --preset gatys --weight 1e2 --size 64 \\
        --frames 5 --steps 60 --work /tmp/calibrate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

import jaxstyle
from jaxstyle.inputs import initial_image, prepare_images
from jaxstyle.objective import LossArgs, make_loss_fn
from jaxstyle.presets import DEFAULT_PRESET, PRESETS, get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.stylize import prepare_targets
from jaxstyle.vgg import prepare_weights

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def make_clip(images: Path, directory: Path, size: int, frames: int) -> list[Path]:
    """A still Tübingen (size x 3/4 size) with The Scream's figure moving along its
    bottom, as in scripts/readme/make_animation.sh."""
    directory.mkdir(parents=True, exist_ok=True)
    h = size * 3 // 4
    scene = Image.open(images / "tubingen.jpg").convert("RGB").resize((size, h))
    figure = Image.open(images / "the_scream.jpg").convert("RGB").resize((size // 6, h // 4))
    paths = []
    for i in range(frames):
        frame = scene.copy()
        frame.paste(figure, (size // 16 + i * size // 9, h - h // 3))
        paths.append(directory / f"{i + 1}.png")
        frame.save(paths[-1])
    return paths


def still_change(contents: list[Path], painted: list[Path]) -> float:
    """The mean |x_t+1 - x_t| of painted frames over the pixels whose content frames agree."""
    c = [np.asarray(Image.open(p), np.float32) for p in contents]
    x = [np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in painted]
    changes = []
    for t in range(len(x) - 1):
        still = np.all(c[t] == c[t + 1], axis=-1)
        changes.append(np.abs(x[t + 1] - x[t])[still].mean())
    return float(np.mean(changes))


def gradient_norm(preset: str, content: Path, style: Path, size: int, at: str, params) -> float:
    """‖∇J‖ of ``preset``'s objective at the content image or at uniform noise (seed 0)."""
    s = resolve_settings(preset, size=size)
    objective = s.objective(get_preset(preset))
    content_img, styles, _ = prepare_images(str(content), [str(style)], s)
    targets = prepare_targets(params, objective, content_img, styles, s, cache=False)
    args = LossArgs(
        prepare_weights(params, conv_algorithm=objective.conv_algorithm), targets, s.loss_weights()
    )
    x = initial_image(at, content_img, content_img.shape[:2], 0)
    loss_fn = make_loss_fn(objective)
    grad = jax.jit(jax.grad(lambda image: loss_fn(image, args)[0]))(x)
    return float(jnp.linalg.norm(grad))


def cmd_gradients(a: argparse.Namespace) -> None:
    params = jaxstyle.load_vgg19(a.weights)
    content = make_clip(a.images, a.work / f"clip{a.size}", a.size, 1)[0]
    style = a.images / "starry_night.jpg"
    norms = {p: gradient_norm(p, content, style, a.size, a.at, params) for p in PRESETS}
    base = get_preset(DEFAULT_PRESET).temporal_weight
    for name, norm in norms.items():
        ratio = norm / norms[DEFAULT_PRESET]
        print(f"{name:18s} |grad J| {norm:.3e}  ratio {ratio:.3e}  lambda {base * ratio:.2g}")


def paint(a: argparse.Namespace, clip: list[Path], weight: float) -> dict:
    """The clip painted with λ = ``weight`` (reused when painted before): its still-pixel
    change and mean style loss."""
    out = a.work / f"{a.preset}-{a.size}-{a.steps}" / f"w{weight:g}.png"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        jaxstyle.animate(
            clip,
            a.images / "starry_night.jpg",
            out,
            preset=a.preset,
            weights=a.weights,
            size=a.size,
            steps=a.steps,
            temporal_weight=weight,
            batch_size=len(clip),
        )
    frames = sorted(jaxstyle.animation.frames_directory(out).glob("frame_*.png"))
    records = [json.loads(f.with_suffix(".json").read_text()) for f in frames]
    style = float(np.mean([r["final_losses"]["style"] for r in records]))
    return {"weight": weight, "still": still_change(clip, frames), "style": style}


def cmd_verify(a: argparse.Namespace) -> None:
    clip = make_clip(a.images, a.work / f"clip{a.size}", a.size, a.frames)
    free = paint(a, clip, 0.0)
    pulled = paint(a, clip, a.weight)
    row = {
        "preset": a.preset,
        "size": a.size,
        "frames": a.frames,
        "steps": a.steps,
        "free": free,
        "pulled": pulled,
        "still_cut": free["still"] / pulled["still"],
        "style_ratio": pulled["style"] / free["style"],
    }
    print(json.dumps(row))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=IMAGES)
    ap.add_argument("--weights", help="the VGG19 weights directory (default: jaxstyle's)")
    ap.add_argument("--work", type=Path, default=Path("calibrate_temporal"))
    ap.add_argument("--size", type=int, default=64)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gradients", help="each preset's |grad J| and the λ it suggests")
    g.add_argument("--at", choices=("content", "noise"), default="content")
    v = sub.add_parser("verify", help="a clip painted with λ = 0 and λ")
    v.add_argument("--preset", default=DEFAULT_PRESET)
    v.add_argument("--weight", type=float, help="λ (default: the preset's)")
    v.add_argument("--frames", type=int, default=5)
    v.add_argument("--steps", type=int, help="default: the preset's")
    a = ap.parse_args(argv)
    jaxstyle.enable_compilation_cache()
    if a.command == "gradients":
        cmd_gradients(a)
    else:
        p = get_preset(a.preset)
        a.weight = p.temporal_weight if a.weight is None else a.weight
        a.steps = p.steps if a.steps is None else a.steps
        cmd_verify(a)


if __name__ == "__main__":
    main(sys.argv[1:])
