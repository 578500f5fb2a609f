"""One image's rows split over 4 host devices (in a subprocess) equal the 1-device run;
a sweep's or batch's cells sharded over 2 groups of 2 devices that split each cell's
rows equal the cells sharded over the 4 devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from PIL import Image

import jaxstyle
from jaxstyle.cli import main


def on_4_devices(script: str, *argv: str) -> tuple[dict, str]:
    """Run ``script`` in a process with 4 host devices: (the JSON it printed last, stderr)."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=4",
    }
    command = [sys.executable, "-c", script, *argv]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


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
    found, _ = on_4_devices(SPLIT, *pair, str(out))
    assert found["devices"] == 4
    assert found["placed"] == [[4, "P('rows', None, None)"]] * 3  # adam, lbfgs, cli
    # Adam: the same steps, summed in another order across devices
    assert found["adam"]["image"] < 1e-5 and found["adam"]["history"] < 1e-5
    # L-BFGS amplifies rounding at the box edges (see test_sweep's LBFGS_IMAGE_ATOL)
    assert found["lbfgs"]["image"] < 3e-3 and found["lbfgs"]["final"] < 1e-3
    assert found["estimate"] == [1, 4, 4]
    plain, split = found["temp"]
    assert split < plain / 2  # each device holds a quarter of the rows' activations
    assert found["cli"] == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["split_over_devices"]) == 4


CELLS_AND_ROWS = textwrap.dedent(
    """
    import json, os, sys
    import jax, numpy as np
    jax.config.update("jax_compilation_cache_dir", os.environ["JAXSTYLE_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import jaxstyle
    from jaxstyle.cli import main
    from jaxstyle.sweep import plan_sweep

    content, style, manifest, out = sys.argv[1:]
    found = {}

    def image_specs(tree):
        return sorted({str(v.sharding.spec) for v in jax.tree.leaves(tree) if v.ndim >= 4})

    # a sweep of 2 cells: over the 4 devices (padded to 4) against 2 x 2 (cells x rows)
    run = dict(size=64, steps=3, optimizer="adam", style_weight=[1e2, 1e4])
    plain = jaxstyle.sweep(content, style, **run)
    plan = plan_sweep(content, style, split_image=2, **run)
    found["mesh"] = dict(plan.mesh.shape)
    found["sweep_specs"] = image_specs(plan.advance(plan.init(), 1).carry)
    split = plan.run()
    found["sweep"] = {
        "image": float(np.abs(plain.images - split.images).max()),
        "history": float(np.abs(split.history["total"] / plain.history["total"] - 1).max()),
        "split_image": [plain.split_image, split.split_image],
    }
    argv = ["sweep", content, style, "-o", out, "--size", "64", "--steps", "3", "-q"]
    found["cli"] = main([*argv, "--optimizer", "adam", "--style-weight", "1e2,1e4",
                         "--split-image", "2"])

    # a batch of 2 jobs with L-BFGS: each job's own targets, L-BFGS memory split by rows
    finals, specs = {}, []
    for rows in (False, 2):
        def keep(step, losses, images, outputs, rows=rows):
            finals[rows] = images
        jaxstyle.batch(manifest, f"{out}-batch-{rows}", size=64, steps=3, optimizer="lbfgs",
                       split_image=rows, callback=keep, callback_every=3)
    found["batch"] = float(np.abs(finals[False] - finals[2]).max())
    record = json.load(open(f"{out}-batch-2/a.json"))
    found["batch_record"] = [len(record["sharded_over"]), record["split_image"]]
    found["errors"] = []
    for bad in (3, 5):
        try:
            plan_sweep(content, style, split_image=bad, **run)
        except jaxstyle.JaxstyleError as err:
            found["errors"].append(str(err))
    plain, rows = (jaxstyle.estimate(64, batch=2, split_image=s) for s in (False, 2))
    found["estimate"] = [plain.devices, plain.split_image, rows.devices, rows.split_image]
    json.dump(found, sys.stdout)
    """
)


def test_cells_over_groups_of_devices_that_split_rows(shared_image, tmp_path):
    t, s = str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))
    manifest = tmp_path / "jobs.jsonl"
    rows = [
        {"content": t, "style": s, "output": "a.png"},
        {"content": t, "style": s, "output": "b.png", "style_weight": 1e4, "seed": 1},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sweep"
    found, stderr = on_4_devices(CELLS_AND_ROWS, t, s, str(manifest), str(out))
    assert found["mesh"] == {"cells": 2, "rows": 2}
    # Adam's moments and the image: cells over the groups, rows within each group
    assert found["sweep_specs"] == ["P('cells', 'rows', None, None)"]
    assert found["sweep"]["image"] < 1e-5 and found["sweep"]["history"] < 1e-5
    assert found["sweep"]["split_image"] == [1, 2]
    assert found["cli"] == 0, stderr[-2000:]
    assert json.loads((out / "sweep.json").read_text())["split_image"] == 2
    assert found["batch"] < 3e-3  # L-BFGS: the rounding of the split sums (as above)
    assert found["batch_record"] == [4, 2]
    assert "must divide the device count" in found["errors"][0]
    assert "cannot split an image over 5 devices: there are 4" in found["errors"][1]
    assert len(found["errors"]) == 2
    assert found["estimate"] == [4, 1, 4, 2]


UNEVEN = textwrap.dedent(
    """
    import json, sys
    import jaxstyle
    from jaxstyle.cli import main

    content, style, out = sys.argv[1:]
    found = {}
    try:
        jaxstyle.estimate(shape=(37, 48), batch=2, split_image=2)
    except jaxstyle.JaxstyleError as err:
        found["estimate"] = str(err)
    argv = ["stylize", content, style, "-o", out, "--size", "50", "--steps", "1", "-q"]
    found["cli"] = main([*argv, "--split-image", "3"])  # 50x38: 38 rows, over 3
    r = jaxstyle.sweep(
        content, style, size=49, steps=1, optimizer="adam", seed=[0, 1], init="noise",
        split_image=2,
    )  # 49x37: 37 rows, over 2
    found["sweep"] = list(r.images.shape)
    json.dump(found, sys.stdout)
    """
)


def test_rows_that_do_not_split_evenly_take_the_nearest_height_that_does(shared_image, tmp_path):
    """jax shards an axis only into equal parts: a photo's 37 or 38 rows over 2 or 3
    devices were a traceback (IndivisibleError) from stylize, sweep, batch and estimate.
    Its height is now rounded to the nearest multiple of the devices (an image of a
    given shape, as estimate's, is still refused in one line)."""
    t, s = str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))
    out = tmp_path / "out.png"
    found, stderr = on_4_devices(UNEVEN, t, s, str(out))
    assert found["estimate"].startswith("cannot split the image's 37 rows evenly over 2 devices")
    assert found["cli"] == 0, stderr[-2000:]
    assert Image.open(out).size == (50, 39)  # 38 rows -> 39, a multiple of 3
    assert len(json.loads(out.with_suffix(".json").read_text())["split_over_devices"]) == 3
    assert found["sweep"] == [2, 36, 49, 3]  # 37 rows -> 36 (18.5 rounds to even)


def test_split_evenly_rounds_the_height_to_the_nearest_multiple():
    from jaxstyle.inputs import split_evenly

    image = np.random.default_rng(0).random((37, 50, 3)).astype(np.float32)
    for rows, height in ((1, 37), (2, 36), (3, 36), (4, 36), (5, 35), (8, 40), (64, 64)):
        assert split_evenly(image, rows).shape == (height, 50, 3), rows
    assert split_evenly(image, 37) is image  # already even: untouched


def test_more_rows_than_devices_names_the_count_in_good_grammar():
    from jaxstyle.split_image import rows_per_image

    for devices, there in ((1, "there is 1"), (4, "there are 4")):
        with pytest.raises(jaxstyle.JaxstyleError, match=f"over 5 devices: {there}$"):
            rows_per_image(5, devices)


def test_one_device_is_the_plain_path(shared_image, tmp_path, capsys):
    """Here (1 device) --split-image changes nothing: no split recorded."""
    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    out = tmp_path / "out.png"
    argv = ["stylize", *pair, "-o", str(out), "--size", "64", "--steps", "3", "--optimizer"]
    assert main([*argv, "adam", "-q", "--split-image"]) == 0
    assert "split_over_devices" not in json.loads(out.with_suffix(".json").read_text())
    assert jaxstyle.estimate(64, split_image=True).split_image == 1
    np.testing.assert_equal(jaxstyle.estimate(64, split_image=True).devices, 1)
    for command, output in (("stylize", "x.png"), ("sweep", "x")):
        assert main([command, *pair, "-o", str(tmp_path / output), "--split-image", "2"]) == 2
        assert "cannot split an image over 2 devices: there is 1\n" in capsys.readouterr().err
    assert main(["estimate", "--size", "64", "--split-image", "2", "--batch", "2"]) == 2
    assert "there is 1\n" in capsys.readouterr().err
    assert main(["stylize", *pair, "-o", str(tmp_path / "x.png"), "--split-image", "0"]) == 2
    assert "over 1 or more devices, not 0" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x").exists()


def test_devices_that_are_not_devices_are_named(shared_image):
    pair = [str(shared_image("tubingen.jpg")), str(shared_image("starry_night.jpg"))]
    cpu = jax.devices()[0]
    for devices, why in (
        ("cpu", "devices must be jax.Device objects"),
        ([0, 1], "devices must be jax.Device objects"),
        ([], "devices is empty: name one device at least"),
        ([cpu, cpu], "devices names a device twice"),
    ):
        with pytest.raises(jaxstyle.JaxstyleError, match=why):
            jaxstyle.stylize(*pair, size=32, steps=1, devices=devices)
        with pytest.raises(jaxstyle.JaxstyleError, match=why):
            jaxstyle.sweep(*pair, size=32, steps=1, style_weight=[1, 2], devices=devices)
    with pytest.raises(jaxstyle.JaxstyleError, match=r"must be \(N, H, W, 3\)"):
        jaxstyle.vgg_features(jaxstyle.load_vgg19(), np.zeros((32, 32, 3)), ["relu1_1"])
