"""VGG19 parity: jaxstyle's features against an independent PyTorch reference.

``tests/data/vgg19_golden.npz`` is written by ``scripts/make_golden.py`` (torch,
float64, no jaxstyle code) from a small crop of ``tubingen.jpg``; it holds the
exact input array, so these tests need neither torch nor any resizing code.
All runs share the golden input's shape (XLA compiles once per shape).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import jaxstyle
from jaxstyle.architecture import LAYER_NAMES

GOLDEN = Path(__file__).resolve().parent / "data" / "vgg19_golden.npz"
RTOL = 1e-4


@pytest.fixture(scope="module")
def golden() -> dict:
    """The golden arrays, plus ``meta`` decoded from JSON."""
    with np.load(GOLDEN) as npz:
        data = {key: npz[key] for key in npz.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


@pytest.fixture(scope="module")
def max_features(vgg_weights, golden) -> dict:
    """jaxstyle's features of the golden input, all 37 layers, max pooling."""
    out = jaxstyle.vgg_features(vgg_weights, golden["input"], LAYER_NAMES)
    return {name: np.asarray(value) for name, value in out.items()}


def rel_err(actual, expected) -> float:
    """||actual - expected|| / ||expected|| (Frobenius), in float64."""
    expected = np.asarray(expected, np.float64)
    return float(
        np.linalg.norm(np.asarray(actual, np.float64) - expected) / np.linalg.norm(expected)
    )


def check_parity(out: dict, golden: dict, prefix: str, layers) -> None:
    """Every layer's shape matches and its relative error is <= RTOL; names the worst."""
    errors = {}
    for name in layers:
        ref = golden[f"{prefix}_{name}"]
        assert out[name].shape == ref.shape, (name, out[name].shape, ref.shape)
        assert out[name].dtype == np.float32, (name, out[name].dtype)
        errors[name] = rel_err(out[name], ref)
    worst = max(errors, key=errors.__getitem__)
    bad = {name: f"{err:.2e}" for name, err in errors.items() if not err <= RTOL}
    assert not bad, f"{prefix} pooling: worst layer {worst} ({errors[worst]:.2e}); failing: {bad}"


def test_golden_file(golden):
    meta = golden["meta"]
    h, w = meta["image_size_hw"]
    assert golden["input"].shape == (1, h, w, 3) and golden["input"].dtype == np.float32
    assert 0.0 <= golden["input"].min() and golden["input"].max() <= 1.0
    assert meta["max_layers"] == list(LAYER_NAMES)
    assert {"pool1", "pool2", "pool3", "pool4", "pool5", "relu5_1"} <= set(meta["avg_layers"])
    assert golden["max_pool5"].shape[1:3] >= (1, 1)


def test_parity_max_pooling(max_features, golden):
    assert list(max_features) == list(LAYER_NAMES)
    check_parity(max_features, golden, "max", LAYER_NAMES)


def test_parity_avg_pooling(vgg_weights, golden):
    layers = tuple(golden["meta"]["avg_layers"])
    out = jaxstyle.vgg_features(vgg_weights, golden["input"], layers, pooling="avg")
    out = {name: np.asarray(value) for name, value in out.items()}
    check_parity(out, golden, "avg", layers)
    # Avg pooling really differs from max pooling (the variant is not ignored).
    assert rel_err(out["pool1"], golden["max_pool1"]) > 1e-2


def test_only_requested_layer(vgg_weights, golden):
    out = jaxstyle.vgg_features(vgg_weights, golden["input"], ["relu1_1"])
    assert list(out) == ["relu1_1"]
    assert rel_err(out["relu1_1"], golden["max_relu1_1"]) <= RTOL


def test_layer_subset_order_and_keys(vgg_weights, golden, max_features):
    layers = ["relu4_1", "conv1_2", "pool2", "relu3_3"]
    out = jaxstyle.vgg_features(vgg_weights, golden["input"], layers)
    assert list(out) == layers
    for name in layers:
        np.testing.assert_allclose(out[name], max_features[name], rtol=1e-5, atol=1e-4)
        assert rel_err(out[name], golden[f"max_{name}"]) <= RTOL


def test_batch_matches_single_runs(vgg_weights, golden, max_features):
    image = golden["input"]
    flipped = image[:, :, ::-1]
    batch = jaxstyle.vgg_features(vgg_weights, np.concatenate([image, flipped]), LAYER_NAMES)
    single_flipped = jaxstyle.vgg_features(vgg_weights, flipped, LAYER_NAMES)
    # A batch is summed in another order than one image (Winograd's products are
    # matrix products over the batch's tiles): 2e-6 apart at relu5_4 measured.
    for name in LAYER_NAMES:
        got = np.asarray(batch[name])
        assert got.shape == (2, *max_features[name].shape[1:])
        assert rel_err(got[:1], max_features[name]) <= 1e-5, name
        assert rel_err(got[1:], single_flipped[name]) <= 1e-5, name
    # The two images really differ, so the comparison above means something.
    assert rel_err(np.asarray(batch["relu3_1"])[1:], max_features["relu3_1"]) > 1e-2


def test_unknown_layer_raises(vgg_weights, golden):
    with pytest.raises(jaxstyle.JaxstyleError, match="relu9_9"):
        jaxstyle.vgg_features(vgg_weights, golden["input"], ["relu1_1", "relu9_9"])
