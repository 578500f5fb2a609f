"""scripts/bench.py end to end at a tiny size, jax only (no torch needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
    cmd = [
        sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--sizes", "32",
        "--steps", "2", "--repeats", "1", "--frameworks", "jax", "--optimizers", "adam",
        "--json", str(out), "--markdown", str(md),
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
