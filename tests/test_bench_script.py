"""scripts/bench.py end to end at a tiny size, jax only (no torch needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench.py"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

POSITIVE = (
    "ms_per_step",
    "steps_per_s",
    "images_per_s",
    "evals_per_step",
    "forward_gmacs",
    "gflop_per_step_per_image",
    "gflops",
    "peak_fraction",
    "compile_cold_s",
    "compile_warm_s",
    "peak_bytes",
)


def test_bench_quick_jax_json(tmp_path, shared_image):
    for name in ("tubingen.jpg", "starry_night.jpg"):
        shared_image(name)  # fails clearly when ../shared/images is missing
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text()
    readme.write_text(original)
    cmd = [
        sys.executable, str(BENCH), "--quick", "--sizes", "32",
        "--steps", "2", "--repeats", "1", "--frameworks", "jax", "--optimizers", "adam",
        "--json", str(out), "--markdown", str(md), "--write-readme", str(readme),
    ]  # fmt: skip
    env = {**os.environ, "TQDM_DISABLE": "1"}
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["peak_gflops"] > 0
    assert report["machine"]["versions"]["jax"]
    assert report["settings"]["frameworks"] == ["jax"]
    (row,) = report["results"]
    assert (row["framework"], row["optimizer"], row["batch"], row["size"]) == ("jax", "adam", 1, 32)
    assert max(row["height"], row["width"]) == 32
    for key in POSITIVE:
        assert isinstance(row[key], (int, float)) and row[key] > 0, (key, row[key])
    assert row["evals_per_step"] == 1.0
    assert row["ms_per_step"] == row["ms_per_step_runs"][0]
    assert abs(row["steps_per_s"] * row["ms_per_step"] - 1e3) < 1e-6
    assert row["compile_warm_s"] < row["compile_cold_s"]
    assert row["initial_loss"] > 0

    text = md.read_text()
    assert "| framework |" in text and "jax " + report["machine"]["versions"]["jax"] in text
    assert "| jax | adam |" in text
    assert "ms/step" in result.stdout

    # --write-readme: only the marked block changes; it holds the Markdown report.
    written = readme.read_text()
    head, rest = original.split(START)
    tail = rest.split(END)[1]
    assert written.startswith(head + START + "\n") and written.endswith(END + tail)
    block = written[len(head) + len(START) : len(written) - len(END + tail)]
    assert block.strip() == text.strip()
    assert block.strip() != original.split(START)[1].split(END)[0].strip()
    assert "--write-readme" in block and "Date: " in block and "Machine: " in block

    # the report is written after each configuration; one cut short says so when rendered
    assert report["complete"] is True and "stopped before" not in text
    out.write_text(json.dumps({**report, "complete": False}))
    cmd = [sys.executable, str(BENCH), "--from-json", str(out), "--markdown", str(md)]
    rendered = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert "(stopped before its last configuration)" in md.read_text()


def test_write_readme_needs_the_markers(tmp_path):
    """Checked before any benchmarking: exit 2, the file untouched."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{END}\ntext\n{START}\n")
    cmd = [sys.executable, str(BENCH), "--frameworks", "jax", "--write-readme", str(readme)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--write-readme" in result.stderr, result.stderr
    assert readme.read_text() == f"# title\n{END}\ntext\n{START}\n"


@pytest.mark.parametrize(
    "name, backend, row",
    [
        ("bench", "jax cpu", "| jax | lbfgs | 192x256 | 1 |"),
        ("bench-gpu", "jax gpu", "| jax | adam | 384x512 | 8 |"),
    ],
)
def test_readme_tables_are_rendered_from_the_saved_reports(tmp_path, name, backend, row):
    """Each performance block of the README (CPU, GPU) is exactly what ``--from-json``
    renders from the reports it names, saved in scripts/results, and only that block
    changes."""
    readme = (ROOT / "README.md").read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    copy = tmp_path / "README.md"
    copy.write_text(readme.replace(readme.split(start)[1].split(end)[0], "\nstale\n"))
    named = re.search(r"--from-json ([^`]+)`", readme.split(start)[1]).group(1).split()
    reports = [ROOT / name for name in named]
    assert reports and all(
        p.is_file() and p.parent.parent == ROOT / "scripts" / "results" for p in reports
    ), named
    cmd = [sys.executable, str(BENCH), "--from-json", *(str(p.relative_to(ROOT)) for p in reports)]
    cmd += ["--readme-block", name, "--write-readme", str(copy)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert copy.read_text() == readme
    block = readme.split(start)[1].split(end)[0]
    assert f"Backend: {backend}" in block and row in block
    assert "<!-- written by scripts/bench.py; do not edit by hand -->" in block
