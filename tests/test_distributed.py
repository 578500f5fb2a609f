"""``--distributed``: two processes on this machine joined by ``jax.distributed``
(CPU collectives over gloo), one CPU device each, shard a sweep's cells between
them; each writes its own cells and process 0 the summaries. The results equal
a single-process run (tolerances as in test_sweep: images atol 1e-5, losses
rtol 1e-4)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.images import to_uint8

SWEEP = dict(size=32, steps=3, optimizer="adam", style_weight=[1e1, 1e2, 1e4])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_a_sweep_and_equal_one(vgg_weights, shared_image, tmp_path):
    pair = str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "jaxstyle", "sweep", *pair, "-o", str(out), "-q"]
    command += ["--size", "32", "--steps", "3", "--optimizer", "adam"]
    command += ["--style-weight", "1e1,1e2,1e4", "--distributed"]
    env = {**os.environ, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{free_port()}"}
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            command,
            env={**env, "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    # 3 cells padded to 4 over 2 devices: process 0 holds cells 0 and 1, process 1 cell 2.
    assert "process 0 of 2: wrote cells [0, 1], grid.png" in outputs[0][0]
    assert "process 1 of 2: wrote cells [2] to" in outputs[1][0]
    record = json.loads((out / "sweep.json").read_text())
    assert len(record["sharded_over"]) == 2

    alone = jaxstyle.sweep(*pair, weights=vgg_weights, **SWEEP)
    for i, cell in enumerate(record["cells"]):
        png = np.asarray(Image.open(out / cell["file"]))
        assert np.abs(png.astype(int) - to_uint8(alone.images[i])).max() <= 1
        for name, value in cell["final"].items():
            assert value == pytest.approx(float(alone.final[name][i]), rel=1e-4)


def test_distributed_without_a_cluster_is_a_one_line_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(JAX_COORDINATOR_ADDRESS="127.0.0.1:1", JAX_NUM_PROCESSES="two")
    proc = subprocess.run(
        [sys.executable, "-m", "jaxstyle", "sweep", "-o", str(tmp_path / "o"), "--distributed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "jaxstyle: error: JAX_NUM_PROCESSES must be an integer, not 'two'"
