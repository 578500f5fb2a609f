"""Named loss settings that reproduce published defaults.

Gram normalisations, reductions and pixel ranges differ between tools by
orders of magnitude, so α/β numbers never transfer between them; a preset
fixes all of them together.
"""

from __future__ import annotations

import dataclasses

from jaxstyle.errors import JaxstyleError

_RELU_X_1 = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclasses.dataclass(frozen=True)
class Preset:
    """Loss definition and defaults of one published implementation.

    Static settings (layers, normalisations) shape the compiled program; the
    weights are defaults for the sweepable :class:`~jaxstyle.objective.LossWeights`.
    ``temporal_weight`` is ``animate``'s default λ, the pull between neighbouring
    frames (:mod:`jaxstyle.temporal`), measured for the preset's losses and optimiser
    (``scripts/calibrate_temporal.py``; the README's "Animations").
    """

    name: str
    source: str
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...]
    content_weight: float
    style_weight: float
    tv_weight: float
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
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    adam_b1: float = 0.9
    adam_eps: float = 1e-8
    steps: int = 500
    init: str = "content"
    temporal_weight: float = 1e4
    """animate's default λ (1e4: measured on the jaxstyle preset's losses)."""


_JCJOHNSON = Preset(
    name="jcjohnson",
    source="jcjohnson/neural-style defaults: content relu4_2, style relu1_1..relu5_1, "
    "Gram/(C·H·W), mean squared errors, content 5, style 100, TV 1e-3 on squared "
    "differences of 0..255 pixels (½Σ), L-BFGS, 1000 iterations",
    content_layers=("relu4_2",),
    style_layers=_RELU_X_1,
    style_layer_weights=(1.0,) * 5,
    content_weight=5.0,
    style_weight=100.0,
    tv_weight=1e-3,
    tv_reduction="half_sum",
    tv_pixel_scale=255.0,
    learning_rate=10.0 / 255.0,
    steps=1000,
    init="noise",
    temporal_weight=1e4,  # the jaxstyle preset's losses
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="gatys",
            source="Gatys, Ecker & Bethge, 'A Neural Algorithm of Artistic Style' (2015/16): "
            "L_content = 1/2 Σ(F-P)² on relu4_2, E_l = Σ(G-A)²/(4N²M²) with w_l = 1/5 on "
            "relu1_1..relu5_1, α/β = 1e-3, average pooling, L-BFGS from white noise",
            content_layers=("relu4_2",),
            style_layers=_RELU_X_1,
            style_layer_weights=(0.2,) * 5,
            content_weight=1.0,
            style_weight=1e3,
            tv_weight=0.0,
            pooling="avg",
            gram_normalize="none",
            content_reduction="half_sum",
            style_reduction="gatys",
            steps=500,
            init="noise",
            temporal_weight=1e7,  # ‖∇J‖ 990x the jaxstyle preset's at noise
        ),
        _JCJOHNSON,
        dataclasses.replace(
            _JCJOHNSON,
            name="jaxstyle",
            source="jaxstyle's default: the jcjohnson losses and weights, started from the "
            "content image and stopped after 100 L-BFGS steps (at 256 px the photo is clearly "
            "painted after 25; from noise, jcjohnson needs 1000)",
            steps=100,
            init="content",
        ),
        Preset(
            name="pytorch-tutorial",
            source="PyTorch 'Neural Transfer Using PyTorch' tutorial: content conv_4 (= conv2_2), "
            "style conv_1..conv_5 (= conv1_1, conv1_2, conv2_1, conv2_2, conv3_1), "
            "Gram/(N·C·H·W), MSE, content 1, style 1e6, L-BFGS, 300 steps from the content "
            "image (published with torchvision's VGG19 weights)",
            content_layers=("conv2_2",),
            style_layers=("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"),
            style_layer_weights=(1.0,) * 5,
            content_weight=1.0,
            style_weight=1e6,
            tv_weight=0.0,
            steps=300,
            init="content",
            temporal_weight=2e7,  # its ‖∇J‖ ratio, 1.9e3 at 64 px
        ),
        Preset(
            name="tf-tutorial",
            source="TensorFlow 'Neural style transfer' tutorial: content block5_conv2 (= relu5_2), "
            "style block1..5_conv1 (= relu1_1..relu5_1) weighted 1/5, Gram/(H·W), MSE, "
            "content 1e4, style 1e-2, TV 30 (tf.image.total_variation: Σ|d|), "
            "Adam(0.02, β1=0.99, ε=0.1), 1000 steps from the content image",
            content_layers=("relu5_2",),
            style_layers=_RELU_X_1,
            style_layer_weights=(0.2,) * 5,
            content_weight=1e4,
            style_weight=1e-2,
            tv_weight=30.0,
            gram_normalize="hw",
            tv_power=1,
            optimizer="adam",
            learning_rate=0.02,
            adam_b1=0.99,
            adam_eps=0.1,
            steps=1000,
            init="content",
            temporal_weight=5e5,  # 10x its ‖∇J‖ ratio, 5.2: 5e4 cut flicker 2.8x
        ),
        Preset(
            name="cnnmrf",
            source="Li & Wand, 'Combining Markov Random Fields and Convolutional Neural Networks "
            "for Image Synthesis' (2016), as its reference code CNNMRF runs it: MRF style loss "
            "on relu3_1 and relu4_1, every 3x3 patch of the image pulled to the nearest of the "
            "style's 3x3 patches (stride 2) by normalised cross-correlation, weight 1e-4 a layer "
            "on the mean of the pulls of the 9 patches over each position (here ½Σ of squared "
            "differences weighted 1e-4/9: the same gradient away from the borders); content "
            "relu4_1 (MSE), weight 20; TV 1e-3 (½Σ of squared differences of 0..255 pixels); "
            "L-BFGS from the content image, 100 steps a level (CNNMRF runs 3 levels up to "
            "384 px: --size 384 --coarse-to-fine 96,192)",
            content_layers=("relu4_1",),
            style_layers=("relu3_1", "relu4_1"),
            style_layer_weights=(1.0, 1.0),
            content_weight=20.0,
            style_weight=1e-4 / 9,
            tv_weight=1e-3,
            style_reduction="half_sum",
            tv_reduction="half_sum",
            tv_pixel_scale=255.0,
            style_loss="mrf",
            mrf_stride=2,
            steps=100,
            init="content",
            temporal_weight=1e2,  # ‖∇J‖ ratio 1.5e-3..3.6e-2 at 64 px (a guess: no flicker to cut)
        ),
    )
}

DEFAULT_PRESET = "jaxstyle"

MOTIONS = ("flow", "none")
"""How ``animate`` aligns a frame's neighbours with it before the pull
(:mod:`jaxstyle.temporal`): moved by the optical flow between the content frames
("flow"), or compared where they are ("none")."""

MOTION = "flow"
"""``animate``'s default of :data:`MOTIONS`."""


def describe(preset: Preset) -> str:
    """One line of a preset's loss and run: layers and weights, style loss, optimiser."""
    p = preset
    style = "MRF patches" if p.style_loss == "mrf" else "Gram"
    return (
        f"content {','.join(p.content_layers)} x{p.content_weight:g}; "
        f"style ({style}) {','.join(p.style_layers)} x{p.style_weight:g}; "
        f"TV x{p.tv_weight:g}; {p.optimizer}, {p.steps} steps from "
        + ("the content image" if p.init == "content" else "noise")
        + f"; animations: temporal weight {short_number(p.temporal_weight)}"
    )


def short_number(x: float) -> str:
    """``x`` as the shorter of its plain and exponent forms: 100, 1e4, 2.5e-5."""
    mantissa, exponent = f"{x:e}".split("e")
    exp_form = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return min(f"{x:g}", exp_form, key=len)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error listing the known ones."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):  # TypeError: not hashable (a list)
        raise JaxstyleError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
