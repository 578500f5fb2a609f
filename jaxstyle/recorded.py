"""A finished run read back from its record, to run it again: larger, longer, or on
other images (``jaxstyle stylize --from RESULT``, :func:`recorded_run`).

Every result has a record: ``X.json`` beside a ``stylize`` output or a ``batch``
job's image, and ``sweep.json`` beside a sweep's cells, which names each cell's
file and settings. The record holds the images as they were given (paths relative
to the directory the run started in) and every setting, resolved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from jaxstyle.errors import JaxstyleError
from jaxstyle.paths import user_path
from jaxstyle.settings import CHOSEN_BY, Settings
from jaxstyle.weights import DEFAULT_SET

EXAMPLE_CONTENT = "example photo"
EXAMPLE_STYLE = "example painting"
"""How a record names the built-in images (:mod:`jaxstyle.examples`)."""

LATER_SETTINGS = {"tileable": False, "coarse_to_fine_auto": False}
"""Settings newer than some records, and their value in a record without them."""

TEXTURE_LEFT_OUT = ("content_weight", "preserve_colors", "style_scale")
"""The recorded settings of a picture a texture of its styles leaves to their defaults
(unless given): it has no content to weigh or take colours from, and its output is its
style's size (a style scale is refused)."""

NAMED = ("content", "noise", EXAMPLE_CONTENT, EXAMPLE_STYLE)
"""The inputs a record names that are not paths."""

FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))
"""The settings a record holds."""

FOLLOWING = {
    "size": ("coarse_to_fine", "coarse_to_fine_steps"),
    "coarse_to_fine": ("coarse_to_fine_steps",),
    "style_layers": ("style_layer_weights",),
}
"""A setting given anew -> the recorded settings chosen for its old value, left to
their defaults (unless given too); coarse-to-fine passes "auto" chose follow no size:
it chooses them anew (:func:`following`)."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a finished run's record says.

    Attributes:
      path: the record (``X.json``, or ``sweep.json`` for a sweep's cell).
      content: the content image as given; None for a texture,
        :data:`EXAMPLE_CONTENT` for the built-in photo.
      styles: the style images as given (:data:`EXAMPLE_STYLE`: the built-in one).
      mask: the style mask(s) as given, or None.
      init: ``content``, ``noise`` or an image path.
      settings: {name: value} of every :class:`~jaxstyle.settings.Settings` field.
      weights: the name of the weight set the run used.
      split: the devices the run split each image's rows over (1: none), whose multiple
        its height was rounded to (:func:`jaxstyle.inputs.split_evenly`).
    """

    path: Path
    content: str | None
    styles: list[str]
    mask: str | list[str] | None
    init: str
    settings: dict[str, Any]
    weights: str
    split: int = 1

    def settings_with(self, given: dict[str, Any], *, texture: bool = False) -> dict[str, Any]:
        """The recorded settings with the non-None ``given`` ones in their place, and
        those that follow from a given one (:data:`FOLLOWING`) and the convolution
        algorithm left out; for a ``texture`` those it has no use for too
        (:data:`TEXTURE_LEFT_OUT`: one given stays, and is refused by the run). A
        preset is not given anew: the record's settings are that preset's loss."""
        given = {k: v for k, v in given.items() if v is not None}
        if given.get("preset", self.settings["preset"]) != self.settings["preset"]:
            raise JaxstyleError(
                f"{self.path} is a run of preset {self.settings['preset']}: its settings "
                "are that loss; for another preset, start without the record"
            )
        recorded = as_asked(self.settings)
        left_out = {k for name in given for k in (name, *following(name, recorded))}
        left_out.add("conv_algorithm")  # chosen anew by size and device (they agree to rounding)
        if texture:
            left_out.update(TEXTURE_LEFT_OUT)
        kept = {k: v for k, v in recorded.items() if k not in left_out}
        return {**kept, **given}

    def inputs(self, new_content: bool = False, given: Any = (), texture: bool = False) -> dict:
        """{content, style, mask, init} as recorded (paths, the example images' names,
        None), less the ``given`` ones; with a ``new_content``, only style and an init of
        content or noise: the record's mask and init image belong to its picture (for a
        ``texture``, noise: it has no content to start from). A relative path taken that
        is not there is a one-line error: it is relative to the directory the recorded
        run started in."""
        if new_content:
            starts = ("noise",) if texture else ("content", "noise")
            init = self.init if self.init in starts else None
            taken = {"style": self.styles, "mask": None, "init": init}
        else:
            taken = {"content": self.content, "style": self.styles, "mask": self.mask}
            taken["init"] = self.init
        taken = {k: v for k, v in taken.items() if k not in given}
        for value in taken.values():
            for p in value if isinstance(value, list) else [value]:
                if p is None or p in NAMED or os.path.isabs(p) or os.path.lexists(p):
                    continue
                raise JaxstyleError(
                    f"cannot read {p}: no such file here; {self.path}'s paths are "
                    "relative to the directory its run started in: run from there"
                )
        return taken

    def note_split(self, rows: int) -> None:
        """A note on stderr where the recorded run split each image's rows over other
        than ``rows`` devices (the run again's): its height, rounded to a multiple of
        them, may come out a row or two otherwise (not refused: the devices are this
        machine's)."""
        if self.split > 1 and rows != self.split:
            print(
                f"jaxstyle: note: {self.path}'s run split its image's rows over {self.split} "
                f"devices, its height rounded to a multiple of {self.split}: --split-image "
                f"{self.split} (Python: devices=) paints the same picture",
                file=sys.stderr,
            )

    def check_weights(self, given: Any) -> None:
        """Refuse to run again a run of another weight set than the fetched one
        without the weights (``given`` None)."""
        if self.weights != DEFAULT_SET and given is None:
            raise JaxstyleError(
                f"{self.path} is a run with the weight set {self.weights}: give it "
                "(--weights DIR; Python: weights=)"
            )


def as_asked(settings: dict[str, Any]) -> dict[str, Any]:
    """A record's settings as a run takes them: coarse-to-fine passes that "auto" chose
    (``coarse_to_fine_auto``) are "auto" again, with its one step count, so that they are
    the same at the same size and chosen anew at another."""
    asked = {k: v for k, v in settings.items() if k not in CHOSEN_BY}
    if settings["coarse_to_fine_auto"]:
        steps = settings["coarse_to_fine_steps"]
        asked |= {"coarse_to_fine": "auto", "coarse_to_fine_steps": steps and list(steps[:1])}
    return asked


def following(name: str, settings: dict[str, Any]) -> tuple[str, ...]:
    """The ``settings`` (:func:`as_asked`) chosen for ``name``'s old value
    (:data:`FOLLOWING`): none for a size whose coarse-to-fine passes are "auto"."""
    if name == "size" and settings["coarse_to_fine"] == "auto":
        return ()
    return FOLLOWING.get(name, ())


def read_run_record(result: str | os.PathLike) -> RunRecord:
    """The record of a finished run's ``result``: an image a ``stylize``, ``sweep`` or
    ``batch`` run wrote, or the ``X.json`` record of a ``stylize`` or ``batch`` one.
    Anything else (no record, a record of an unfinished run, a sweep's own
    ``sweep.json``) is a one-line :class:`JaxstyleError`."""
    path = user_path(result, "a result path")
    if path.suffix.lower() == ".json":
        if path.name == "sweep.json":
            raise JaxstyleError(
                f"{path} records a whole sweep: name one of its cells' images instead"
            )
        return _run_record(path, _read(path))
    beside = path.with_suffix(".json")
    if beside.is_file():
        return _run_record(beside, _read(beside))
    sweep = path.parent / "sweep.json"
    if sweep.is_file():
        record = _read(sweep)
        cells = [c for c in record.get("cells", ()) if c.get("file") == path.name]
        if not cells:
            raise JaxstyleError(f"{sweep} has no cell {path.name}")
        axes = {k: v for k, v in cells[0].items() if k in FIELDS}
        return _run_record(sweep, {**record, "settings": {**record["settings"], **axes}})
    raise JaxstyleError(f"no record of {path}: neither {beside.name} nor a sweep.json beside it")


def _read(path: Path) -> dict:
    """A record's JSON object; a one-line error where it is not one."""
    from jaxstyle.images import open_input

    with open_input(path, noun="a record") as file:
        try:
            record = json.loads(file.read())
        except (UnicodeDecodeError, ValueError) as e:
            raise JaxstyleError(f"cannot read {path}: not a JSON record ({e})") from None
    if not isinstance(record, dict):
        raise JaxstyleError(f"cannot read {path}: not a JSON record (an object)")
    return record


def _run_record(path: Path, record: dict) -> RunRecord:
    """A :class:`RunRecord` of a record's JSON; a one-line error where it lacks its
    inputs or settings (an unfinished run's, or not jaxstyle's)."""
    if "status" in record:
        raise JaxstyleError(f"{path} records an unfinished run: {record['status']}")
    inputs, settings = record.get("inputs"), record.get("settings")
    if not isinstance(inputs, dict) or not isinstance(settings, dict):
        raise JaxstyleError(f"{path} is not a jaxstyle run record (no inputs and settings)")
    settings = {**LATER_SETTINGS, **settings}
    missing = FIELDS - set(settings)
    if missing:
        raise JaxstyleError(f"{path} lacks settings {', '.join(sorted(missing))}")
    content, styles, mask = inputs.get("content"), inputs.get("styles"), inputs.get("mask")
    init = inputs.get("init") or settings["init"]
    kinds = {
        "content": (content is None or _is_path(content), "a path"),
        "styles": (_are_paths(styles), "a list of paths"),
        "mask": (mask is None or _is_path(mask) or _are_paths(mask), "a path or a list of paths"),
        "init": (_is_path(init), "a path"),
    }
    for name, (ok, kind) in kinds.items():
        if not ok:
            raise JaxstyleError(f"{path}: the recorded {name} {inputs.get(name)!r} is not {kind}")
    _note_pull(path, record.get("fingerprint"))
    directory = record.get("directory")  # relative paths are relative to it (if recorded)

    def located(value: Any) -> Any:
        if not isinstance(directory, str) or value is None or value in NAMED:
            return value
        if isinstance(value, list):
            return [located(v) for v in value]
        return os.path.normpath(os.path.join(directory, value))  # as it is if absolute

    return RunRecord(
        path=path,
        content=located(content),
        styles=located(list(styles or ())),
        mask=located(mask),
        init=located(init),
        settings={k: settings[k] for k in sorted(FIELDS)},
        weights=str(record.get("weights", DEFAULT_SET)),
        split=_split(record),
    )


def _split(record: dict) -> int:
    """The devices a record's run split each image's rows over: a stylize record's
    ``split_over_devices``, a sweep's or batch's ``split_image``; 1 where none."""
    split = record.get("split_image")
    if isinstance(split, int) and not isinstance(split, bool) and split > 1:
        return split
    devices = record.get("split_over_devices")
    return len(devices) if isinstance(devices, list) and devices else 1


def _note_pull(path: Path, fingerprint: Any) -> None:
    """A note on stderr where the record is a frame of a clip, held to its neighbours
    (:mod:`jaxstyle.temporal`): run again on its own, it has none, so it is painted
    without that pull (not refused: there is nothing to give that would bring them)."""
    weight = fingerprint.get("temporal_weight") if isinstance(fingerprint, dict) else None
    if isinstance(weight, (int, float)) and weight:
        print(
            f"jaxstyle: note: {path} is a frame of a clip, held to its neighbours (temporal "
            f"weight {weight:g}); run on its own, it is painted without that pull",
            file=sys.stderr,
        )


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _are_paths(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(map(_is_path, value))


def recorded_run(result: str | os.PathLike, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`jaxstyle.stylize` that run again the run that made
    ``result`` (see :func:`read_run_record`), with ``overrides`` in their place:
    ``jaxstyle.stylize(**jaxstyle.recorded_run("grid/content5_style100.png", size=1024))``
    renders a sweep's cell larger, as ``jaxstyle stylize --from`` does.

    The record gives the content and style images, mask, init, preset and every
    setting. A setting overridden leaves out the recorded ones chosen for its old
    value (:data:`FOLLOWING`: a new ``size`` drops the coarse-to-fine passes, but those
    that ``coarse_to_fine="auto"`` chose are chosen anew for it). A new
    ``content`` takes the record's settings but not its mask or init image. A run
    with another weight set than the fetched one needs ``weights``. Relative paths
    are as recorded: relative to the directory that run started in. A frame of a
    clip is painted without its pull towards its neighbours (a note on stderr says so).
    """
    from jaxstyle.examples import example_content, example_style

    record = read_run_record(result)
    record.check_weights(overrides.get("weights"))
    record.note_split(len(overrides.get("devices") or ()) or 1)
    given = {k: overrides.pop(k) for k in FIELDS - {"init"} if k in overrides}
    texture = overrides.get("content", record.content) is None
    run = record.settings_with(given, texture=texture)  # an init given stays an input
    run |= record.inputs(new_content="content" in overrides, given=overrides, texture=texture)
    if run.get("content") == EXAMPLE_CONTENT:
        run["content"] = example_content()
    if "style" in run:
        run["style"] = [example_style() if s == EXAMPLE_STYLE else s for s in run["style"]]
    return run | overrides
