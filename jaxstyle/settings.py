"""A run's settings: a preset's defaults with the caller's overrides, resolved and
checked (:func:`resolve_settings`), and the passes of a coarse-to-fine run."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from jaxstyle import colors
from jaxstyle import images as image_io
from jaxstyle.architecture import min_side
from jaxstyle.errors import JaxstyleError, boolean, integer, number
from jaxstyle.objective import LossWeights, Objective, finite_float32
from jaxstyle.optimize import OptimizerConfig
from jaxstyle.presets import DEFAULT_PRESET, Preset, get_preset
from jaxstyle.vgg import choose_conv_algorithm, layer_names


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every resolved setting of a run (JSON-able via ``dataclasses.asdict``), and how
    its coarse-to-fine passes were chosen (:data:`CHOSEN_BY`)."""

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
    tileable: bool = False
    coarse_to_fine_auto: bool = False  # the passes are those "auto" chose for the size

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
            tileable=self.tileable,
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


CHOSEN_BY = frozenset({"coarse_to_fine_auto"})
"""The :class:`Settings` fields that are no setting: they record how one was chosen
(``coarse_to_fine="auto"``), for a run again from the record (:mod:`jaxstyle.recorded`)."""


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
        tileable=False,
    )
    unknown = set(overrides) - set(values)
    if unknown:
        raise JaxstyleError(
            f"unknown settings: {', '.join(sorted(unknown))}; known: {', '.join(values)}"
        )
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name in ("content_layers", "style_layers"):  # a list, or "relu1_1,relu2_1"
        layers = values[name]
        values[name] = layer_names(layers.split(",") if isinstance(layers, str) else layers, name)
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
        values["coarse_to_fine_auto"] = True  # recorded: chosen anew for a new size (--from)
    _check_integers(values)
    for name in ("learning_rate", "style_scale"):  # compared with numbers by the checks
        number(name.replace("_", " "), values[name])
    values["tileable"] = boolean("tileable", values["tileable"])
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
            values[name] = integer(name, values[name])
    for name, what in (
        ("coarse_to_fine", "coarse-to-fine size"),
        ("coarse_to_fine_steps", "coarse-to-fine steps"),
    ):
        items = values[name]
        if items is not None:
            items = [items] if np.ndim(items) == 0 else items
            values[name] = tuple(integer(what, v) for v in items)


def check_batch_size(batch_size: Any) -> int:
    """Refuse a batch size (of a batch's jobs, an animation's frames, a sweep's cells
    run together) that is not an integer >= 1."""
    if integer("batch size", batch_size) < 1:
        raise JaxstyleError(f"batch size must be >= 1, not {batch_size}")
    return int(batch_size)


def check_every(name: str, every: Any) -> int:
    """Refuse a count of steps (``checkpoint_every``, ``--checkpoint-every``,
    ``callback_every``, a live view's total steps) that is not an integer >= 0: the one
    check, and wording, of stylize, sweep, batch and LiveView."""
    every = integer(name, every)
    if every < 0:
        raise JaxstyleError(f"{name} must be >= 0 steps, not {every}")
    return every


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
    if not 0 < s.style_scale < float("inf"):
        raise JaxstyleError("style scale must be finite and > 0")
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
