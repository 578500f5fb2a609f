"""Loss curves of finished runs, read from their JSON records, as one picture.

A record is what the commands write beside their images: ``OUT.json`` of
``stylize``, each job's ``.json`` of ``batch`` (one curve each), or a sweep's
``sweep.json`` (one curve per cell, named by its file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxstyle import images as image_io
from jaxstyle.errors import JaxstyleError
from jaxstyle.paths import user_path

TERMS = ("total", "content", "style", "tv")
"""The loss terms plotted, one panel each."""

SOME_TERMS = ("temporal",)
"""Terms that only some records have (a frame's pull towards its neighbours,
:mod:`jaxstyle.temporal`): a panel of their own where a curve has them."""

MAX_LEGEND = 12
"""More curves than this get no legend (a large sweep's would hide the plot)."""


def read_histories(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{curve name: {term: (steps,) losses}} of one record: a stylize or batch
    record's own history (named by its output's file name), or a sweep's cells
    (named by their files)."""
    path = user_path(path, "a record path")
    with image_io.open_input(path, "the record ", "a record") as file:
        data = file.read()
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError as err:  # UnicodeDecodeError too
        why = _not_a_record(path) or err
        raise JaxstyleError(f"cannot read the record {path}: {why}") from None
    try:
        if isinstance(record, dict) and "cells" in record:
            return {Path(c["file"]).stem: _history(c["history"]) for c in record["cells"]}
        return {Path(record.get("output", path)).name: _history(record["history"])}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise JaxstyleError(
            f"{path} is not a jaxstyle record with a loss history (OUT.json or sweep.json)"
        ) from None


def _not_a_record(path: Path) -> str | None:
    """Why ``path``, an image, is not a record, naming where its record is; else None."""
    from jaxstyle.animation import frames_directory

    if path.suffix.lower() not in {*image_io.FORMATS, *image_io.ANIMATION_FORMATS}:
        return None
    frames = frames_directory(path)
    if frames.is_dir():
        return f"it is an animation; give its frames' records, {frames / '*.json'}"
    sweep = path.parent / "sweep.json"
    if not path.with_suffix(".json").exists() and sweep.is_file():
        return f"it is a sweep's image; give the sweep's record {sweep} (a curve per cell)"
    return "it is an image; give the .json record written beside it"


def _history(history: Mapping) -> dict[str, np.ndarray]:
    """{term: (steps,) losses}; ValueError unless each term is a list of numbers."""
    terms = [*TERMS, *(k for k in SOME_TERMS if k in history)]
    losses = {k: np.asarray(history[k], np.float64) for k in terms}
    if any(v.ndim != 1 for v in losses.values()):
        raise ValueError("a history's terms are lists of losses, one per step")
    return losses


def plot_losses(
    curves: Mapping[str, Mapping[str, Sequence[float]]], output: Path, *, overwrite: bool = False
) -> Path:
    """Draw each curve's {term: losses per step} in one panel per term of
    :data:`TERMS`, and of :data:`SOME_TERMS` that a curve has (log scale where the
    losses are positive), and write the picture (PNG/JPEG/... by suffix, atomically)
    to ``output``, an existing file only with ``overwrite``."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not curves:
        raise JaxstyleError("no loss curves to plot")
    terms = [*TERMS, *(k for k in SOME_TERMS if any(k in h for h in curves.values()))]
    colors = {name: f"C{i % 10}" for i, name in enumerate(curves)}  # one per curve, every panel
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.4), dpi=100)
    try:
        for ax, term in zip(axes, terms, strict=True):
            drawn = {name: h[term] for name, h in curves.items() if term in h}
            for name, losses in drawn.items():
                ax.plot(np.arange(len(losses)), losses, label=name, lw=1.2, color=colors[name])
            values = np.concatenate([np.asarray(x, np.float64) for x in drawn.values()])
            if values.size and np.all(values > 0):
                ax.set_yscale("log")
            ax.set_title(f"{term} loss (weighted)" if term != "total" else "total loss J")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        if len(curves) <= MAX_LEGEND:
            axes[0].legend(fontsize=7)
        fig.tight_layout()
        canvas = fig.canvas
        assert isinstance(canvas, FigureCanvasAgg)  # matplotlib.use("Agg") above
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    finally:
        plt.close(fig)
    image_io.save_image(output, pixels, overwrite=overwrite)  # checks the path
    return Path(output)
