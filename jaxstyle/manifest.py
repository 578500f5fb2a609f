"""Batch manifests: one stylize job a line, as JSON Lines or CSV.

Fields of a job (JSONL keys, or CSV header columns):
  content   path of the photograph (empty or missing: texture synthesis)
  style     path of the style image; several: a JSON list, or ``;``-separated
  output    output file name (.png/.jpg/...) in the output directory
            (default: ``<content stem>_<style stem>.png``)
  mask      optional style mask: white where the style is matched (see
            :func:`jaxstyle.stylize`'s ``mask``); one per style image (each
            style in its own region): a JSON list, or ``;``-separated
  content_weight, style_weight, tv_weight, size, seed, style_scale   optional numbers
  style_blend   optional weights of several style images, one per image: a JSON
            list, or ``;``-separated
Relative paths are relative to the manifest's directory. A JSON ``null`` is a field
not given, as an empty CSV cell is (pandas writes one for a missing value). Blank lines and lines
that start with ``#`` are skipped (in CSV, also before the header). A bad row is
reported as a :class:`RowError` with its line number; the other rows stand. A JSON
key given twice in a row, or a CSV row with more or fewer values than the header
has columns, is a bad row; a column given twice in the header, a bad manifest.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import re
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from jaxstyle.errors import JaxstyleError
from jaxstyle.images import FORMATS, open_input
from jaxstyle.paths import user_path

NUMBERS = ("content_weight", "style_weight", "tv_weight", "size", "seed", "style_scale")
INTEGERS = ("size", "seed")
LISTS = ("style_blend",)
"""Settings a row gives as several numbers."""
OVERRIDES = (*NUMBERS, *LISTS)
LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""What ends a manifest's line (not ``str.splitlines``'s others, such as U+2028, which
JSON strings may hold unescaped and editors do not count)."""
FIELDS = ("content", "style", "output", "mask", *OVERRIDES)


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of a manifest.

    Attributes:
      line: the row's line number in the manifest (1-based; a CSV header is line 1).
      content: the content image, or None for texture synthesis.
      styles: one or more style images.
      output: the output file name (no directory part).
      overrides: the row's settings {name: number} (content_weight, style_weight,
        tv_weight, size, seed, style_scale) and {"style_blend": (w, ...)}, applied over the
        batch's shared settings; None (the default) is {}: none.
      mask: the style mask, a tuple of one mask per style image (each style in
        its own region), or None (the style everywhere).
    """

    line: int
    content: Path | None
    styles: tuple[Path, ...]
    output: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    mask: Path | tuple[Path, ...] | None = None

    def __post_init__(self):
        if self.content is not None and not isinstance(self.content, (str, os.PathLike)):
            raise JaxstyleError(
                f"a job's content must be a path or None, not {type(self.content).__name__}"
            )
        object.__setattr__(self, "styles", _job_paths("styles", self.styles))
        if isinstance(self.mask, (list, tuple)):  # one per style
            object.__setattr__(self, "mask", _job_paths("mask", self.mask))
        elif self.mask is not None:
            object.__setattr__(self, "mask", _job_paths("mask", self.mask)[0])
        if self.overrides is None:
            object.__setattr__(self, "overrides", {})
        if not isinstance(self.overrides, Mapping):
            raise JaxstyleError(
                f"a job's overrides must be a dict or None, not {type(self.overrides).__name__}"
            )
        unknown = sorted(set(self.overrides) - set(OVERRIDES))
        if unknown:
            raise JaxstyleError(
                f"a job's overrides are among {', '.join(OVERRIDES)}, not {', '.join(unknown)}"
            )
        if isinstance(self.line, bool) or not isinstance(self.line, int):
            raise JaxstyleError(f"a job's line must be an integer, not {self.line!r}")
        output = self.output  # a name in the output directory, never a path out of it
        if (
            not isinstance(output, str)
            or Path(output).name != output
            or output.startswith(".")
            or "\0" in output  # no file name can hold one
        ):
            raise JaxstyleError(f"output must be a plain file name, not {output!r}")
        if Path(output).suffix.lower() not in FORMATS or Path(output).suffix.lower() == ".json":
            raise JaxstyleError(
                f"output {output} needs an image suffix ({', '.join(sorted(set(FORMATS)))})"
            )


def _job_paths(name: str, value: Any) -> tuple[Path, ...]:
    """A :class:`Job`'s ``styles`` or ``mask``: one path (not iterated by character) or a
    list or tuple of them (a generator is read once, here), as a tuple of paths."""
    many = value if isinstance(value, (list, tuple, Iterator)) else (value,)
    paths = tuple(many)
    if not all(isinstance(p, (str, os.PathLike)) for p in paths):
        kinds = ", ".join(sorted({type(p).__name__ for p in paths}))
        raise JaxstyleError(f"a job's {name} must be a path or a list of paths, not {kinds}")
    return tuple(map(Path, paths))


class RowError(NamedTuple):
    """A manifest row that was skipped, and why."""

    line: int
    message: str


def read_manifest(path: Path) -> tuple[list[Job], list[RowError]]:
    """The jobs of a ``.jsonl`` or ``.csv`` manifest, and the rows that were refused.

    Raises :class:`JaxstyleError` only when the file itself cannot be read.
    """
    path = user_path(path, "a manifest path")
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise JaxstyleError(f"manifest {path} must be .jsonl (JSON Lines) or .csv")
    with open_input(path, "manifest ", "a manifest") as file:
        data = file.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JaxstyleError(
            f"cannot read manifest {path}: it is not UTF-8 text; save it as UTF-8"
        ) from None
    lines = LINE_BREAK.split(text)
    rows = _jsonl_rows(lines) if path.suffix.lower() == ".jsonl" else _csv_rows(lines, path)
    jobs: list[Job] = []
    errors: list[RowError] = []
    for line, row in rows:
        try:
            jobs.append(_job(line, row, path.parent))
        except JaxstyleError as err:
            errors.append(RowError(line, str(err)))
    if not jobs and not errors:
        raise JaxstyleError(f"manifest {path} has no jobs")
    jobs, clashes = unique_outputs(jobs)
    return jobs, sorted(errors + clashes)


def unique_outputs(jobs: list[Job]) -> tuple[list[Job], list[RowError]]:
    """The jobs whose output name (and so its .json record) no earlier job has, and
    a :class:`RowError` for each that repeats one (it would overwrite that job's): names
    are compared as case-insensitive, normalising filesystems (macOS, Windows) do."""
    kept: list[Job] = []
    errors: list[RowError] = []
    outputs: dict[str, int] = {}
    for job in jobs:
        stem = unicodedata.normalize("NFC", Path(job.output).stem).lower()  # é as e + ◌́
        if stem in outputs:
            errors.append(
                RowError(
                    job.line,
                    f"output {job.output} has the same name as line {outputs[stem]}'s "
                    "(each output also gets a .json record)",
                )
            )
        else:
            outputs[stem] = job.line
            kept.append(job)
    return kept, errors


def _jsonl_rows(lines: list[str]) -> Iterator[tuple[int, Any]]:
    for line, raw in enumerate(lines, start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(raw, object_pairs_hook=_unique_keys)
        except JaxstyleError as err:
            row = err
        except ValueError as err:
            row = JaxstyleError(f"not JSON: {err}")
        yield line, row


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object's pairs as a dict; raises if a key appears twice (not: the last wins)."""
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise JaxstyleError(f"the key {json.dumps(key)} appears twice")
    return dict(pairs)


def _csv_rows(lines: list[str], path: Path) -> Iterator[tuple[int, Any]]:
    lines = ["" if raw.lstrip().startswith("#") else raw for raw in lines]
    header = next((i for i, raw in enumerate(lines) if raw.strip()), len(lines))
    reader = csv.DictReader(lines[header:])  # skips blank rows, not a blank header
    columns = [name.strip() for name in reader.fieldnames or []]
    for name in columns:
        if name and columns.count(name) > 1:
            raise JaxstyleError(f"{path}:{header + 1}: the column {name} appears twice")
    if columns and "style" not in columns:  # every row would lack its style image
        first = lines[header]
        separators = ((";", "semicolons"), ("\t", "tabs"))  # Excel's CSV in some locales
        hint = next(
            (f"; separate its columns by commas, not {n}" for c, n in separators if c in first), ""
        )
        if first.lstrip().startswith("{"):
            hint = "; is this JSON Lines? name it .jsonl"
        raise JaxstyleError(f"{path}:{header + 1}: the header has no style column{hint}")
    for row in reader:
        line = header + reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:
            yield line, JaxstyleError("more values than header columns")
            continue
        if None in row.values():
            yield line, JaxstyleError("fewer values than header columns")
            continue
        yield line, {k.strip(): (v or "").strip() for k, v in row.items() if (v or "").strip()}


def _job(line: int, row: Any, base: Path) -> Job:
    if isinstance(row, JaxstyleError):
        raise row
    if not isinstance(row, dict):
        raise JaxstyleError("a job must be a JSON object")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise JaxstyleError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    row = {k: v for k, v in row.items() if v is not None}  # null: not given, as in CSV
    content = _path(row["content"], base) if row.get("content") else None
    if not row.get("style"):
        raise JaxstyleError("no style image")
    styles = _paths("style", row["style"], base)
    overrides: dict[str, Any] = {name: _number(name, row[name]) for name in NUMBERS if name in row}
    overrides.update({name: _numbers(name, row[name]) for name in LISTS if name in row})
    output = row.get("output") or f"{(content or styles[0]).stem}_{styles[0].stem}.png"
    mask = _paths("mask", row["mask"], base) if row.get("mask") else None
    if mask is not None and isinstance(row["mask"], str) and len(mask) == 1:
        mask = mask[0]  # one mask, every style's; a list: one per style (counted by batch)
    return Job(line, content, styles, output, overrides, mask)


def _paths(name: str, value: Any, base: Path) -> tuple[Path, ...]:
    """The paths of a field that holds one path, a JSON list or ``;``-separated paths."""
    if isinstance(value, str):
        value = [v for v in (part.strip() for part in value.split(";")) if v]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise JaxstyleError(f"{name} must be a path or a list of paths")
    return tuple(_path(v, base) for v in value)


def _path(value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise JaxstyleError(f"image paths must be non-empty strings, not {value!r}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise JaxstyleError(f"no such image file: {path}") from None
    except OSError as e:  # a name too long, ...: this row's error, not the manifest's
        raise JaxstyleError(f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise JaxstyleError(f"{path} is a directory, not an image file")
    if not stat.S_ISREG(mode):
        raise JaxstyleError(f"{path} is not a regular file (a FIFO, device or socket)")
    return path


def _numbers(name: str, value: Any) -> tuple[float | int, ...]:
    """The numbers of a field that holds a JSON list of them or ``;``-separated ones."""
    items = [part.strip() for part in value.split(";")] if isinstance(value, str) else value
    if isinstance(items, list) and items:
        with contextlib.suppress(JaxstyleError):  # one message for the whole field
            return tuple(_number(name, v) for v in items)
    raise JaxstyleError(f"{name} must be numbers separated by ';' (or a JSON list), not {value!r}")


def _number(name: str, value: Any) -> float | int:
    if isinstance(value, bool):  # JSON true/false: not numbers here
        raise JaxstyleError(f"{name} must be a number, not {json.dumps(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise JaxstyleError(f"{name} must be a number, not {value!r}") from None
    if name in INTEGERS:
        if isinstance(value, (int, str)):  # exactly, not through float: a JSON int, "12"
            with contextlib.suppress(ValueError):
                return int(value)
        if not math.isfinite(number) or number != int(number):
            raise JaxstyleError(f"{name} must be an integer, not {value!r}")
        return int(number)
    return number
