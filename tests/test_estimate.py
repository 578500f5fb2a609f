"""``jaxstyle.estimate`` / ``jaxstyle estimate``: compiled-step memory and FLOPs, no images."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from jaxstyle.architecture import CONV_SHAPES, forward_macs
from jaxstyle.cli import main
from jaxstyle.estimate import flops_per_step

# A shallow objective keeps the compilations quick; the memory logic is the same.
SHALLOW = dict(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"), optimizer="adam")
SHALLOW_ARGS = ["--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1"]


def test_forward_macs_match_the_hand_count():
    """GUIDE.md section 4: 23.7 GMAC at 256², 94.7 at 512² up to relu5_1."""
    assert forward_macs(256, 256, "relu5_1") / 1e9 == pytest.approx(23.67, abs=0.01)
    assert forward_macs(512, 512, "relu5_1") / 1e9 == pytest.approx(94.67, abs=0.01)
    # conv1_1, conv1_2 at 10x6, pool to 5x3, conv2_1 there.
    expected = 10 * 6 * 9 * (3 * 64 + 64 * 64) + 5 * 3 * 9 * 64 * 128
    assert forward_macs(10, 6, "relu2_1") == expected
    assert flops_per_step(1000, 1.0, 0.0) == 4000.0  # Adam: forward + backward, 2 FLOPs/MAC
    assert flops_per_step(1000, 1.0, 1.0) == 6000.0


@pytest.fixture(scope="module")
def estimates(vgg_weights):
    def run(**kwargs):
        return jaxstyle.estimate(weights=vgg_weights, **SHALLOW, **kwargs)

    return {
        "32": run(size=32),
        "48": run(size=48),
        "32 batch 3": run(size=32, batch=3),
        "32 batch 3 jobs": run(size=32, batch=3, mode="batch"),
        "32x48": run(shape=(32, 48)),
    }


def test_memory_grows_with_size_and_batch(estimates):
    small, large, batch3 = estimates["32"], estimates["48"], estimates["32 batch 3"]
    assert (small.height, small.width, batch3.batch) == (32, 32, 3)
    for bigger in (large, batch3):
        assert bigger.temp_bytes > small.temp_bytes
        assert bigger.peak_bytes > small.peak_bytes
    assert small.temp_bytes < estimates["32x48"].temp_bytes < large.temp_bytes
    # The carry (image + two Adam moments, float32) is donated: its outputs reuse the inputs.
    assert small.alias_bytes >= 3 * 32 * 32 * 3 * 4
    assert batch3.alias_bytes >= 3 * small.alias_bytes


def test_batch_mode_holds_a_set_of_targets_per_job(vgg_weights, estimates):
    """A batch's jobs each hold their targets (arguments of the step); a sweep's cells share
    one set: 3 jobs on one device take exactly two sets of targets more."""
    sweep, jobs = estimates["32 batch 3"], estimates["32 batch 3 jobs"]
    layers = {k: SHALLOW[k] for k in ("content_layers", "style_layers")}
    objective = jaxstyle.Objective.from_preset(jaxstyle.PRESETS["jaxstyle"], **layers)
    image = jax.ShapeDtypeStruct((32, 32, 3), jnp.float32)
    targets = jax.eval_shape(
        lambda x: jaxstyle.compute_targets(vgg_weights, objective, x, [x]), image
    )
    target_bytes = sum(t.size * t.dtype.itemsize for t in jax.tree.leaves(targets))
    assert (sweep.mode, jobs.mode, jobs.devices) == ("sweep", "batch", 1)
    assert jobs.argument_bytes - sweep.argument_bytes == 2 * target_bytes
    assert jobs.vgg_flops == sweep.vgg_flops


def test_estimate_counts_weights_and_flops(estimates):
    e = estimates["32"]
    convs = ("conv1_1", "conv1_2", "conv2_1")
    # kernel, transposed kernel and bias of each layer run, passed as arguments
    assert e.weight_bytes == 4 * sum(2 * 9 * i * o + o for i, o in map(CONV_SHAPES.get, convs))
    assert e.argument_bytes > e.weight_bytes
    parts = e.argument_bytes + e.output_bytes - e.alias_bytes + e.temp_bytes
    assert e.peak_bytes == parts + e.generated_code_bytes
    assert e.vgg_flops == flops_per_step(forward_macs(32, 32, "relu2_1"), 1.0, 0.0)
    assert estimates["32 batch 3"].vgg_flops == 3 * e.vgg_flops
    if e.xla_flops is not None:  # XLA counts the same convolutions, plus Grams and losses
        assert 0.5 < e.xla_flops / e.vgg_flops < 2.0
    assert (e.optimizer, e.compute_dtype, e.preset) == ("adam", "float32", "jaxstyle")


def test_lbfgs_estimate_counts_every_layer_its_step_holds(vgg_weights):
    """L-BFGS's line search loop takes all the weights, so its compiled step holds every
    layer's kernel, transposed kernel and bias, not only those of the layers run."""
    e = jaxstyle.estimate(weights=vgg_weights, size=32, **{**SHALLOW, "optimizer": "lbfgs"})
    every = 4 * sum(2 * 9 * i * o + o for i, o in CONV_SHAPES.values())
    assert e.optimizer == "lbfgs" and e.weight_bytes == every
    assert e.argument_bytes > e.weight_bytes


def test_winograd_estimate_counts_the_kernels_its_step_holds(vgg_weights):
    """8 cells of 64x64 through relu3_1: conv3_1 (16x16, 16 tiles each) runs F(4x4) over
    the cells at once; the step holds those kernels (36 floats per Cin x Cout) and its bias,
    not conv3_1's direct kernel nor the F(2x2) kernels of the targets' single images
    (another program's), and no kernel of a layer not run."""
    e = jaxstyle.estimate(
        weights=vgg_weights,
        size=64,
        batch=8,
        content_layers=("relu2_1",),
        style_layers=("relu1_1", "relu3_1"),
        optimizer="adam",
        conv_algorithm="winograd",
    )
    direct = ("conv1_1", "conv1_2", "conv2_1", "conv2_2")
    c_in, c_out = CONV_SHAPES["conv3_1"]
    expected = sum(2 * 9 * i * o + o for i, o in map(CONV_SHAPES.get, direct))
    expected += c_out + 36 * c_in * c_out
    assert (e.conv_algorithm, e.devices) == ("winograd", 1)
    assert e.weight_bytes == 4 * expected


def test_cli_prints_table_and_json(estimates, capsys):
    assert main(["estimate", "--size", "32", "--optimizer", "adam", *SHALLOW_ARGS]) == 0
    out = capsys.readouterr().out
    assert "one adam step, 32x32, batch 1" in out and "peak estimate" in out
    peak_mib = estimates["32"].peak_bytes / 2**20
    assert f"{peak_mib:.1f} MiB per device" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--size", "8"], "at least 16 pixels, not 8"),
        (["--shape", "0x32"], "at least 16 pixels, not 0x32"),
        (["--shape", "32by32"], "HxW"),
        (["--size", "32", "--batch", "0"], "batch must be from 1 to 1048576, not 0"),
        (["--size", "32", "--batch", str(2**40)], "batch must be from 1 to 1048576"),  # XLA aborted
        (["--size", "32", "--batch", "2", "--mode", "jobs"], "mode"),
        (["--size", "32", "--shape", "32x32"], "either"),
        (["--size", "32", "--compute-dtype", "float16"], "compute-dtype"),
        (["--size", "100000"], "size must be from 16 to 8192 pixels"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, args, needle):
    assert main(["estimate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxstyle: error: ") and "\n" not in err, err
    assert needle in err, err


def test_a_size_too_small_is_named_as_given(capsys):
    assert main(["estimate", "--size=-3"]) == 2
    assert capsys.readouterr().err.endswith("image sides must be at least 16 pixels, not -3\n")


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(shape=(16,)), "shape must be (H, W)"),
        (dict(shape=5), "shape must be (H, W), not 5"),
        (dict(shape="32x32"), "shape must be (H, W)"),
        (dict(shape=(16.5, 16)), "size must be an integer, not 16.5"),
        (dict(size=32, batch=2.5), "batch must be an integer, not 2.5"),
        (dict(size=True), "size must be an integer, not True"),
    ],
)
def test_bad_api_arguments_are_clear_errors(kwargs, needle):
    with pytest.raises(jaxstyle.JaxstyleError) as info:
        jaxstyle.estimate(**kwargs)
    assert needle in str(info.value)


def test_json_is_the_api_result(estimates, capsys):
    argv = ["estimate", "--shape", "32x48", "--optimizer", "adam", *SHALLOW_ARGS, "--json"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    expected = estimates["32x48"]
    assert record["height"] == 32 and record["width"] == 48
    assert record["peak_bytes"] == expected.peak_bytes
    assert np.isclose(record["vgg_flops"], expected.vgg_flops)
