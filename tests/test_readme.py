"""The README's examples run as written, only smaller (size and steps shrunk)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

from jaxstyle.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHRINK = {"size": 64, "steps": 3}  # the README's numbers are for real use; tests stay tiny


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_api_example(monkeypatch):
    (code,) = blocks("python")
    for name, value in SHRINK.items():
        code, n = re.subn(rf"\b{name}=\d+", f"{name}={value}", code)
        assert n >= 1, f"the README's API example no longer sets {name}="
    code, n = re.subn(r"\bcallback_every=\d+", "callback_every=1", code)  # every step of 3
    assert n == 1, "the README's live view example no longer sets callback_every="
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result, gram = namespace["result"], namespace["gram"]
    assert max(result.image.shape[:2]) == 64 and len(result.history["style"]) == 3
    assert gram.shape == (1, 64, 64) and np.isfinite(np.asarray(gram)).all()
    grad = np.asarray(namespace["grad"])
    assert grad.shape == result.image.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0
    watched, view = namespace["watched"], namespace["view"]
    assert view.state()["steps"] == [1, 2, 3] and view.state()["shape"] == [48, 64]
    assert watched.image.shape == result.image.shape


def shared(text: str) -> str:
    return text.replace("../shared", str(ROOT.parent / "shared"))


def test_shell_commands(tmp_path, monkeypatch):
    """Every ``jaxstyle`` command of the README, in a scratch directory, with the
    README's manifest as jobs.jsonl."""
    monkeypatch.chdir(tmp_path)
    (manifest,) = blocks("jsonl")
    (tmp_path / "jobs.jsonl").write_text(shared(manifest))
    (tmp_path / "frames").mkdir()
    photo = Image.open(ROOT.parent / "shared" / "images" / "tubingen.jpg").resize((96, 48))
    for i in range(3):  # a pan of three frames
        photo.crop((8 * i, 0, 8 * i + 64, 48)).save(tmp_path / "frames" / f"{i + 1}.png")
    commands = [
        shlex.split(line.split("#")[0])
        for block in blocks("sh")
        for line in block.splitlines()
        if line.startswith("jaxstyle ")
    ]
    expected = ["stylize"] * 7 + ["sweep", "plot", "stylize", "batch", "animate"]
    assert [c[1] for c in commands] == expected
    for argv in commands:
        argv = [shared(a) for a in argv[1:]]
        if "--live" in argv:  # any free port
            argv[argv.index("--live") + 1] = "127.0.0.1:0"
        if argv[0] == "plot":  # no optimisation to shrink
            assert main(argv) == 0, argv
            continue
        # Adam: the shapes other tests compile (the README's default is L-BFGS).
        shrink = [f"--{k}={v}" for k, v in SHRINK.items()] + ["--optimizer=adam"]
        if "--coarse-to-fine" in argv:  # a pass below the shrunk size
            shrink.append("--coarse-to-fine=48")
        assert main([*argv, *shrink, "-q"]) == 0, argv
    assert (tmp_path / "out.png").exists() and (tmp_path / "out.json").exists()
    kept = json.loads((tmp_path / "kept.json").read_text())
    assert kept["settings"]["preserve_colors"] == "luminance" and (tmp_path / "kept.png").exists()
    assert len(list((tmp_path / "grid").glob("content*.png"))) == 4
    mrf = json.loads((tmp_path / "mrf.json").read_text())
    assert mrf["settings"]["preset"] == "cnnmrf" and len(mrf["history"]["total"]) == 6
    assert (tmp_path / "grid" / "grid.png").exists()
    assert json.loads((tmp_path / "tile.json").read_text())["settings"]["tileable"] is True
    assert Image.open(tmp_path / "grid-losses.png").size == (1600, 340)
    big = json.loads((tmp_path / "big.json").read_text())  # --from a cell: its settings
    assert (big["settings"]["content_weight"], big["settings"]["style_weight"]) == (5, 1000)
    assert (tmp_path / "results" / "bridge_scream.png").exists()
    assert (tmp_path / "results" / "tubingen_starry.json").exists()
    painted = Image.open(tmp_path / "painted.gif")
    assert painted.n_frames == 3 and painted.info["duration"] == 80  # --fps 12: 83 ms, a GIF 8 cs
    assert len(list((tmp_path / "painted.frames").glob("frame_*.png"))) == 3


def test_install_extras_exist():
    """Every extra the README installs (``pip install ".[name]"``, or ``".[name]"`` alone)
    is one pyproject.toml declares; the accelerator extras bring jax's own of that name."""
    import importlib.metadata

    named = set(re.findall(r'"\.\[([\w-]+)\]"', README))
    assert {"cuda12", "tpu", "h5", "test"} <= named
    metadata = importlib.metadata.metadata("jaxstyle")
    assert named <= set(metadata.get_all("Provides-Extra") or [])
    requires = metadata.get_all("Requires-Dist") or []
    for extra in ("cuda12", "cuda13", "tpu"):
        assert any(r.startswith(f"jax[{extra}]") and f'extra == "{extra}"' in r for r in requires)


def test_python_api_maps_every_option():
    """The Python API section's table names every command and option, and the
    functions it gives are public."""
    import argparse

    import jaxstyle
    from jaxstyle.cli_parser import build_parser

    section = README.split("## Python API")[1].split("\n## ")[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))

    def options(parser, command=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    assert f"jaxstyle {' '.join([*command, name])}" in table, name
                    yield from options(sub, (*command, name))
            elif action.option_strings and not isinstance(action, argparse._HelpAction):
                yield command, action.option_strings

    for command, strings in options(build_parser()):
        named = [s for s in strings if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", table)]
        assert named, f"jaxstyle {' '.join(command)} {'/'.join(strings)} is not in the table"
    called = set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)\(", table))
    assert called and called <= set(jaxstyle.__all__), called - set(jaxstyle.__all__)


def test_contents_list_every_section_with_its_github_anchor():
    """The contents at the top link every ``##``/``###`` heading, in order, by the
    anchor GitHub gives it (lower case, punctuation dropped, spaces as hyphens)."""
    contents = README.split("**Contents**")[1].split("\n## ")[0]
    links = re.findall(r"^ *- \[(.+)\]\(#(.+)\)$", contents, flags=re.M)
    headings = re.findall(r"^##+ (.+)$", README, flags=re.M)
    assert [title for title, _ in links] == headings
    for title, target in links:
        assert target == re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_coarse_to_fine_auto_as_described():
    """The README's sizes of ``--coarse-to-fine auto`` are those it runs."""
    from jaxstyle.settings import AUTO_COARSEST, auto_coarse_to_fine

    found = re.search(
        r"`--coarse-to-fine auto`\s+halves `--size` while the half is at least (\d+) px "
        r"\((\d+): passes at ([\d, and]+) px;\s+below (\d+): none\)",
        README,
    )
    assert found, "the README no longer describes --coarse-to-fine auto's sizes"
    least, size, passes, below = found.groups()
    assert int(least) == AUTO_COARSEST
    assert auto_coarse_to_fine("auto", int(size)) == tuple(map(int, re.findall(r"\d+", passes)))
    assert auto_coarse_to_fine("auto", int(below) - 1) == ()
    assert auto_coarse_to_fine("auto", int(below)) != ()


def test_options_of_the_same_name_are_keywords_with_the_same_default():
    """The table's "keywords of the same name": each option of stylize, sweep, batch,
    animate and estimate that the table does not map otherwise is a keyword of the
    function (or a setting its ``**settings`` take), and one with a default of its own
    on the command line has the same default in Python."""
    import argparse
    import dataclasses
    import inspect

    import jaxstyle
    from jaxstyle.cli_parser import build_parser
    from jaxstyle.settings import Settings

    settings = {f.name for f in dataclasses.fields(Settings)}
    mapped = {"images", "output", "texture", "from_result", "quiet", "save_every", "live"}
    mapped |= {"live_every", "distributed", "json", "manifest", "styles", "records"}
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("stylize", "sweep", "batch", "animate", "estimate"):
        function = getattr(jaxstyle, name)
        keywords = dict(inspect.signature(function).parameters)
        if name == "sweep":  # its **grid: plan_sweep's keywords
            keywords |= inspect.signature(jaxstyle.plan_sweep).parameters
        for action in commands.choices[name]._actions:
            dest = action.dest
            if dest in mapped or dest == "help" or (name == "stylize" and dest == "split_image"):
                continue  # stylize: devices=
            assert dest in keywords or dest in settings, f"{name} has no keyword {dest}"
            given = keywords.get(dest)
            if given is not None and action.default not in (None, False):
                assert given.default == action.default, (name, dest)
