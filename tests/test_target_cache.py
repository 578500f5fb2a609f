"""Targets kept in the disk cache: a rerun reads exactly what computing them gives, and
any input that changes the targets (images, layers, weights, blend) computes them anew."""

from __future__ import annotations

import dataclasses
import sys

import jax
import numpy as np
import pytest

from jaxstyle import disk_cache, target_cache
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings

stylize = sys.modules["jaxstyle.stylize"]  # the module (jaxstyle.stylize is the function)

SHAPE = (24, 32, 3)


@pytest.fixture
def computed(monkeypatch):
    """Counts the runs that compute their targets rather than read them."""
    calls = []
    compute = stylize.compute_targets

    def counted(*args, **kwargs):
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(stylize, "compute_targets", counted)
    return calls


def _targets(weights, content, styles, cache=True, **overrides):
    settings = resolve_settings(**overrides)
    objective = settings.objective(get_preset("jcjohnson"))
    targets = stylize.prepare_targets(weights, objective, content, styles, settings, cache=cache)
    return jax.tree.map(np.asarray, targets)


def _assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_rerun_reads_its_targets_and_a_changed_input_computes_them(
    tmp_path, vgg_weights, computed
):
    rng = np.random.default_rng(0)
    content, style = (rng.random(SHAPE, dtype=np.float32) for _ in range(2))
    previous = disk_cache.enable(tmp_path)
    try:
        first = _targets(vgg_weights, content, [style])
        (entry,) = tmp_path.glob("*.jaxstyle-targets")
        again = _targets(vgg_weights, content, [style])
        assert len(computed) == 1
        _assert_same(again, first)

        copy = dataclasses.replace(vgg_weights)  # another object, the same values
        _assert_same(_targets(copy, content, [style]), first)
        assert len(computed) == 1

        edited = style.copy()
        edited[0, 0, 0] = 1 - edited[0, 0, 0]
        other = [
            lambda: _targets(vgg_weights, content, [edited]),  # one pixel of the style
            lambda: _targets(vgg_weights, None, [style]),  # texture synthesis
            lambda: _targets(vgg_weights, content, [style], style_layers=["relu1_1"]),
            lambda: _targets(vgg_weights, content, [style, edited], style_blend=[1, 3]),
            lambda: _targets(vgg_weights, content, [style, edited], style_blend=[3, 1]),
        ]
        for n, run in enumerate(other, start=2):
            run()
            assert len(computed) == n
        params = jax.tree.map(np.array, vgg_weights.params)
        params["conv5_1"]["bias"][0] += 1.0
        _targets(dataclasses.replace(vgg_weights, params=params), content, [style])
        assert len(computed) == len(other) + 2

        entry.write_bytes(b"not an npz")  # unreadable: computed and stored anew
        _assert_same(_targets(vgg_weights, content, [style]), first)
        assert len(computed) == len(other) + 3
        entries = set(tmp_path.glob("*.jaxstyle-targets"))
        _targets(vgg_weights, content, [style], cache=False)  # as a batch's jobs: not cached
        assert len(computed) == len(other) + 4
        assert set(tmp_path.glob("*.jaxstyle-targets")) == entries
    finally:
        disk_cache.enable(previous)
    disabled = disk_cache.enable(None)
    try:  # cache off: always computed, nothing keyed
        assert target_cache.key(vgg_weights, None, content, [style], None, SHAPE[:2]) is None
        _targets(vgg_weights, content, [style])
        assert len(computed) == len(other) + 5
    finally:
        disk_cache.enable(disabled)
