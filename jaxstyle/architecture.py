"""The VGG19 layer table: names, order and convolution shapes.

VGG19 has five blocks of 3x3 convolutions (2, 2, 4, 4, 4 of them) with 64,
128, 256, 512, 512 output channels; each convolution is followed by a ReLU and
each block by a 2x2 stride-2 pooling. Layers are named as in the literature:
``conv{block}_{i}``, ``relu{block}_{i}``, ``pool{block}``.
"""

from __future__ import annotations

_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


def _layer_table() -> tuple[tuple[str, ...], dict[str, tuple[int, int]]]:
    names: list[str] = []
    conv_shapes: dict[str, tuple[int, int]] = {}
    channels_in = 3
    for block, (n_convs, channels) in enumerate(_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            conv_shapes[f"conv{block}_{i}"] = (channels_in, channels)
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
            channels_in = channels
        names.append(f"pool{block}")
    return tuple(names), conv_shapes


LAYER_NAMES, CONV_SHAPES = _layer_table()
"""All 37 layer names in network order; {conv name: (in channels, out channels)}."""

CONV_NAMES = tuple(CONV_SHAPES)
"""The 16 convolutions in network order."""

LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def deepest(layers) -> str:
    """The layer of ``layers`` that comes last in the network."""
    return max(layers, key=LAYER_INDEX.__getitem__)


def blocks(last_layer: str) -> tuple[tuple[str, ...], ...]:
    """The layers up to ``last_layer`` by block, each block's ending at its pooling
    (the last one's at ``last_layer``): the units :func:`jaxstyle.vgg.features`
    rematerialises."""
    out: list[tuple[str, ...]] = []
    block: list[str] = []
    for name in LAYER_NAMES[: LAYER_INDEX[last_layer] + 1]:
        block.append(name)
        if name.startswith("pool"):
            out.append(tuple(block))
            block = []
    return (*out, tuple(block)) if block else tuple(out)


def min_side(layer: str) -> int:
    """The shortest image side, in pixels, whose feature map at ``layer`` is not
    empty: each pooling up to it halves the sides, rounding down (16 for relu5_1)."""
    return 2 ** sum(name.startswith("pool") for name in LAYER_NAMES[: LAYER_INDEX[layer] + 1])


def conv_inputs(height: int, width: int, last_layer: str):
    """Yield (name, h, w) for each convolution up to ``last_layer``: its input's
    sides for an image of ``height`` x ``width``, each 2x2 stride-2 pooling
    before it halving them (rounding down)."""
    h, w = height, width
    for name in LAYER_NAMES[: LAYER_INDEX[last_layer] + 1]:
        if name.startswith("conv"):
            yield name, h, w
        elif name.startswith("pool"):
            h, w = h // 2, w // 2


def forward_macs(height: int, width: int, last_layer: str) -> int:
    """Multiply-accumulates of VGG19's convolutions up to ``last_layer``.

    Each 3x3 convolution (SAME padding, stride 1) costs h·w·9·Cin·Cout at its
    input resolution h x w (:func:`conv_inputs`). ReLUs and pooling are not counted.
    """
    return sum(
        h * w * 9 * CONV_SHAPES[name][0] * CONV_SHAPES[name][1]
        for name, h, w in conv_inputs(height, width, last_layer)
    )
