"""One image's rows split over 4 host devices (in a subprocess) equal the 1-device run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jaxstyle
from jaxstyle.cli import main

SPLIT = textwrap.dedent(
    """
    import json, os, sys
    import jax, numpy as np
    jax.config.update("jax_compilation_cache_dir", os.environ["JAXSTYLE_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import jaxstyle
    from jaxstyle.cli import main

    content, style, out = sys.argv[1:]
    found = {"devices": jax.device_count(), "placed": []}
    module = sys.modules["jaxstyle.stylize"]
    split_rows = module.split_rows

    def recorded(x0, *rest):  # where the run's image and state are placed
        x0, args, init, step = split_rows(x0, *rest)
        carry = init(x0, args)
        found["placed"].append([len(x0.sharding.device_set), str(carry.image.sharding.spec)])
        return x0, args, init, step

    module.split_rows = recorded
    for optimizer, steps in (("adam", 3), ("lbfgs", 4)):
        run = dict(size=64, steps=steps, optimizer=optimizer)
        one = jaxstyle.stylize(content, style, **run)
        split = jaxstyle.stylize(content, style, devices=jax.devices(), **run)
        found[optimizer] = {
            "image": float(np.abs(one.image - split.image).max()),
            "history": float(np.abs(split.history["total"] / one.history["total"] - 1).max()),
            "final": float(abs(split.final["total"] / one.final["total"] - 1)),
        }
    plain, rows = (jaxstyle.estimate(128, split_image=s, optimizer="adam") for s in (False, True))
    found["estimate"] = [plain.devices, rows.devices, rows.split_image]
    found["temp"] = [plain.temp_bytes, rows.temp_bytes]
    argv = ["stylize", content, style, "-o", out, "--size", "64", "--steps", "3"]
    found["cli"] = main([*argv, "--optimizer", "adam", "-q", "--split-image"])
    json.dump(found, sys.stdout)
    """
)


def test_rows_split_over_4_devices_equal_one_device(shared_image, tmp_path):
    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    out = tmp_path / "split.png"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run(
        [sys.executable, "-c", SPLIT, *pair, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["devices"] == 4
    assert found["placed"] == [[4, "P('rows', None, None)"]] * 3  # adam, lbfgs, cli
    # Adam: the same steps, summed in another order across devices
    assert found["adam"]["image"] < 1e-5 and found["adam"]["history"] < 1e-5
    # L-BFGS amplifies rounding at the box edges (see test_sweep's LBFGS_IMAGE_ATOL)
    assert found["lbfgs"]["image"] < 3e-3 and found["lbfgs"]["final"] < 1e-3
    assert found["estimate"] == [1, 4, True]
    plain, split = found["temp"]
    assert split < plain / 2  # each device holds a quarter of the rows' activations
    assert found["cli"] == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["split_over_devices"]) == 4


def test_one_device_is_the_plain_path(shared_image, tmp_path, capsys):
    """Here (1 device) --split-image changes nothing: no split recorded."""
    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    out = tmp_path / "out.png"
    argv = ["stylize", *pair, "-o", str(out), "--size", "64", "--steps", "3", "--optimizer"]
    assert main([*argv, "adam", "-q", "--split-image"]) == 0
    assert "split_over_devices" not in json.loads(out.with_suffix(".json").read_text())
    assert main(["estimate", "--size", "64", "--split-image", "--batch", "2"]) == 2
    assert "goes with batch 1" in capsys.readouterr().err
    with pytest.raises(jaxstyle.JaxstyleError, match="batch 1"):
        jaxstyle.estimate(64, batch=2, split_image=True)
    assert not jaxstyle.estimate(64, split_image=True).split_image
    np.testing.assert_equal(jaxstyle.estimate(64, split_image=True).devices, 1)
