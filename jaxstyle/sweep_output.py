"""Writing a sweep: one PNG per cell, a labelled contact sheet, ``sweep.json``, ``sweep.csv``."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle import images as image_io
from jaxstyle.errors import JaxstyleError
from jaxstyle.paths import user_path
from jaxstyle.sheets import labelled_grid
from jaxstyle.sweep import AXES, SweepResult

SHORT = {
    "content_weight": "content",
    "style_weight": "style",
    "tv_weight": "tv",
    "style_layer_weights": "layers",
    "style_scale": "scale",
    "style_blend": "blend",
    "seed": "seed",
}
"""Each axis's short name, used in file names and grid labels."""

NAMED_WHEN_SWEPT = ("style_layer_weights", "style_scale", "style_blend")
"""The axes a cell's file name names only when they are swept."""

SUMMARY_FILES = ("grid.png", "sweep.json", "sweep.csv")
LOSSES = ("content", "style", "tv", "total")


def format_value(value: Any, sep: str = ",", *, exact: bool = False) -> str:
    """A number as ``%g`` (5, 1000, 0.001, 1e+06), or with ``exact`` in full where
    ``%g`` is not the number (0.1234567, 1000001.0); a tuple joined by ``sep``."""
    if isinstance(value, tuple):
        return sep.join(format_value(v, exact=exact) for v in value)
    if isinstance(value, int):
        return str(value)
    short = f"{value:g}"
    return short if not exact or float(short) == value else repr(float(value))


def _exact_axes(axes: dict) -> set[str]:
    """The swept axes with values that ``%g`` prints alike (1e6 and 1000001): named
    and labelled in full (see :func:`format_value`)."""
    return {
        name
        for name, values in axes.items()
        if len({format_value(v) for v in values}) < len(values)
    }


def cell_files(cells: list[dict], axes: dict) -> list[str]:
    """One PNG name per cell from its settings, e.g. ``content5_style1000_tv0.001_seed0.png``.

    Content, style, TV weights and seed always appear; the style layer weights
    (``layers1-0.5-1-1-1``), the style scale (``scale0.5``) and the style blend
    (``blend0.75-0.25``) only when swept. Values as ``%g``, an axis's in full where
    two of them print alike (``style1000001.0``). Names are stable and filesystem-safe
    (digits, letters, ``.+-_``); if two cells' names are the same, every name gets
    its cell index as a prefix (``cell003_...``).
    """
    exact = _exact_axes(axes)
    names = [
        "_".join(
            f"{SHORT[name]}{format_value(cell[name], '-', exact=name in exact)}"
            for name in AXES
            if name not in NAMED_WHEN_SWEPT or name in axes
        )
        for cell in cells
    ]
    if len(set(names)) < len(names):
        names = [f"cell{i:03d}_{name}" for i, name in enumerate(names)]
    return [f"{name}.png" for name in names]


def _label(cell: dict, names: list[str], exact: set[str]) -> str:
    return ", ".join(
        f"{SHORT[name]} {format_value(cell[name], exact=name in exact)}" for name in names
    )


def contact_sheet(images: np.ndarray, cells: list[dict], axes: dict, *, pad: int = 4) -> np.ndarray:
    """A labelled grid of the cells' (N, H, W, 3) images, (H', W', 3) uint8.

    Columns are the last swept axis, rows the product of the other swept axes
    (cell i sits in row i // columns, column i % columns); the row and column
    labels name the values.
    """
    swept = list(axes)
    columns = len(axes[swept[-1]]) if swept else 1
    rows = len(cells) // columns
    exact = _exact_axes(axes)
    col_labels = [_label(cells[c], swept[-1:], exact) for c in range(columns)]
    row_labels = [_label(cells[r * columns], swept[:-1], exact) for r in range(rows)]
    return labelled_grid(images, row_labels, col_labels, pad=pad)


def refuse_existing(directory: Path, cells: list[dict], axes: dict) -> None:
    """Raise if ``directory`` holds any file that a sweep of ``cells`` writes."""
    for name in [*cell_files(cells, axes), *SUMMARY_FILES]:
        if (directory / name).exists():
            raise JaxstyleError(f"{directory / name} exists; not overwriting it")


def write_sweep(
    result: SweepResult, directory: Path, *, record: dict | None = None, overwrite: bool = False
) -> list[Path]:
    """Write a sweep's outputs (atomically) into ``directory`` (created); returns the paths.
    An existing file among them is an error unless ``overwrite``.

    Files: one PNG per cell (see :func:`cell_files`), ``grid.png`` (see
    :func:`contact_sheet`), ``sweep.json`` (shared settings, axes, each cell's
    settings, file, final losses and loss history, timings, versions, the result's
    ``inputs`` and ``weights`` so that :func:`jaxstyle.recorded_run` of a cell runs it
    again; plus ``record``) and ``sweep.csv`` (a row per cell: its settings, file and final
    content/style/tv/total losses). With ``jax.distributed`` each process writes
    the PNGs of its own cells (``result.local``) and process 0 the rest.
    """
    import jax

    from jaxstyle.provenance import record_text, run_metadata, run_sources

    directory = image_io.check_output_dir(user_path(directory, "an output directory"))
    files = cell_files(result.cells, result.axes)
    if not overwrite:
        refuse_existing(directory, result.cells, result.axes)
    writes: list[tuple[Path, np.ndarray | str]] = [
        (directory / files[i], result.images[i]) for i in result.local
    ]
    if jax.process_index() != 0:
        _write_all(writes)
        return [path for path, _ in writes]
    sheet = contact_sheet(result.images, result.cells, result.axes)
    writes.append((directory / "grid.png", sheet.astype(np.float32) / 255.0))
    cells: list[dict[str, Any]] = [
        {
            "index": i,
            "file": name,
            **cell,
            "final": {k: float(result.final[k][i]) for k in LOSSES},
            "history": {k: v[i].tolist() for k, v in result.history.items()},
        }
        for i, (name, cell) in enumerate(zip(files, result.cells, strict=True))
    ]
    shared = {k: v for k, v in dataclasses.asdict(result.settings).items() if k not in result.axes}
    summary = {
        **run_sources(result),
        **(record or {}),
        "settings": shared,
        "axes": result.axes,
        "cell_order": "Cartesian product of the axes in this order, the last fastest: "
        + ", ".join(AXES),
        "cells": cells,
        "timings": result.timings,
        "sharded_over": result.devices,
        "split_image": result.split_image,
        **({} if result.batch_size is None else {"batch_size": result.batch_size}),
        **run_metadata(),
    }
    writes.append((directory / "sweep.json", record_text(summary)))

    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["index", "file", *AXES, *LOSSES])
    for cell in cells:
        values = [
            format_value(v, exact=True) if isinstance(v, tuple) else v for v in map(cell.get, AXES)
        ]
        writer.writerow([cell["index"], cell["file"], *values, *map(cell["final"].get, LOSSES)])
    writes.append((directory / "sweep.csv", table.getvalue()))
    _write_all(writes)
    return [directory / name for name in (*files, *SUMMARY_FILES)]


def _write_all(writes: list[tuple[Path, np.ndarray | str]]) -> None:
    """Write each (path, image (H, W, 3) or text). If one fails, the files this call
    created are removed before the error is raised, so that the same sweep can run
    again rather than be refused by its own partial outputs."""
    created: list[Path] = []
    try:
        for path, content in writes:
            if not path.exists():
                created.append(path)
            if isinstance(content, str):
                image_io.write_text_atomic(path, content)
            else:
                image_io.save_image(path, content, overwrite=True)  # write_sweep checked
    except JaxstyleError as err:
        for path in created:
            path.unlink(missing_ok=True)
        raise JaxstyleError(
            f"{err} (the files this sweep had created are removed: the same command can run again)"
        ) from None
