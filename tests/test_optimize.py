"""The optimisation layer: L-BFGS's up-front first trial, compiled-step reuse."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import jaxstyle
from jaxstyle import optimize
from jaxstyle.inputs import prepare_images
from jaxstyle.objective import LossArgs, compute_targets, make_loss_fn
from jaxstyle.presets import get_preset
from jaxstyle.settings import resolve_settings
from jaxstyle.vgg import prepare_weights

SIZE = 64  # tubingen at 64 px: 48 x 64, the shape the other end-to-end tests use


@pytest.fixture(scope="module")
def pair(shared_image):
    return shared_image("tubingen.jpg"), shared_image("starry_night.jpg")


@pytest.fixture(scope="module")
def problem(vgg_weights, pair):
    """(loss_fn, content image, LossArgs) of the jaxstyle preset at 48 x 64."""
    settings = resolve_settings("jaxstyle", size=SIZE)
    objective = settings.objective(get_preset("jaxstyle"))
    content, styles, _ = prepare_images(*pair, settings)
    targets = compute_targets(vgg_weights, objective, content, styles)
    args = LossArgs(
        prepare_weights(vgg_weights, conv_algorithm=objective.conv_algorithm),
        targets,
        settings.loss_weights(),
    )
    return make_loss_fn(objective), content, args


def test_first_trial_outside_loop_gives_the_zoom_line_search_iterates(problem):
    """Same L-BFGS iterates with and without the up-front trial.

    The two programs fuse differently, so they agree to float rounding, which
    L-BFGS then amplifies slowly: 4 steps agree to 1e-4 relative in the loss.
    """
    loss_fn, content, args = problem
    runs = {}
    for fast in (True, False):
        config = optimize.OptimizerConfig(name="lbfgs", first_trial_outside_loop=fast)
        carry = jax.jit(optimize.make_init(loss_fn, config))(content, args)
        result = optimize.run(optimize.make_step(loss_fn, config), carry, args, 4)
        runs[fast] = (np.asarray(optimize.final_image(result.carry)), result.history["total"])
    np.testing.assert_allclose(runs[True][1], runs[False][1], rtol=1e-4)
    np.testing.assert_allclose(runs[True][0], runs[False][0], atol=2e-3)


@pytest.mark.parametrize("first_trial_outside_loop", [True, False])
def test_lbfgs_records_the_terms_of_each_iterate(problem, first_trial_outside_loop):
    """An L-BFGS step reports the terms its line search kept (no forward pass of its
    own): step k's record equals the loss of the k-th iterate, evaluated separately.
    With the up-front trial the terms come from the accepting evaluation, or after a
    zoom search from a forward pass of the point it found; without it, always the latter."""
    loss_fn, content, args = problem
    config = optimize.OptimizerConfig(
        name="lbfgs", first_trial_outside_loop=first_trial_outside_loop
    )
    step = optimize.make_step(loss_fn, config)  # the programs of the test above
    carry = jax.jit(optimize.make_init(loss_fn, config))(content, args)
    trials = []
    for _ in range(3):
        image = jax.numpy.clip(carry.image, 0.0, 1.0)  # L-BFGS minimises J(clip(x))
        total, terms = optimize.compile_once(loss_fn, image, args)(image, args)
        result = optimize.run(step, carry, args, 1)  # donates carry
        record = {k: v[0] for k, v in result.history.items()}
        assert set(record) == {"total", "content", "style", "tv"}
        np.testing.assert_allclose(record["total"], total, rtol=1e-5)
        for name, value in terms.items():  # other programs: float32 rounding of J
            np.testing.assert_allclose(record[name], value, rtol=1e-4, atol=1e-6 * total)
        carry = result.carry
        trials.append(int(optax.tree.get(carry.opt_state, "num_linesearch_steps")))
    if first_trial_outside_loop:  # both ways taken: the trial accepted, and the zoom (step 2)
        assert 1 in trials and max(trials) > 1, trials


def test_second_run_reuses_the_compiled_step(vgg_weights, pair):
    kwargs = dict(weights=vgg_weights, size=SIZE, steps=2, optimizer="adam")
    jaxstyle.stylize(*pair, **kwargs)
    before = optimize._compile.cache_info()
    result = jaxstyle.stylize(*pair, **kwargs, seed=1, content_weight=3.0)
    after = optimize._compile.cache_info()
    assert after.misses == before.misses, "a same-shaped second run compiled again"
    assert after.hits > before.hits and len(result.history["total"]) == 2


@pytest.mark.parametrize("driver", ["python", "device"])
def test_progress_is_reported_only_at_its_points(driver):
    """on_progress (the only place a run waits for the device) comes at multiples of
    progress_every, at the end, and otherwise at most once per progress_seconds."""

    def step(carry, args):
        carry = carry + args
        return carry, {"total": carry.sum()}

    def calls(**kwargs):
        seen = []

        def on_progress(done, record, get_carry):
            assert isinstance(record["total"], np.ndarray)
            seen.append((done, float(record["total"]), float(get_carry().sum())))

        x = jax.numpy.zeros(2)
        result = optimize.run(step, x, 1.0, 7, driver=driver, on_progress=on_progress, **kwargs)
        np.testing.assert_array_equal(result.history["total"], 2.0 * np.arange(1, 8))
        return seen

    assert calls(progress_every=3, progress_seconds=float("inf"), chunk=50) == [
        (n, 2.0 * n, 2.0 * n) for n in (3, 6, 7)
    ]
    every_time = [n for n, _, _ in calls(progress_seconds=0.0, chunk=2)]
    assert every_time == ([1, 2, 3, 4, 5, 6, 7] if driver == "python" else [2, 4, 6, 7])


@pytest.mark.parametrize("driver", ["python", "device"])
def test_zero_steps_run_none(driver):
    """No step: the carry as given, an empty history (the device loop failed to
    compile, its history having no row to write)."""
    x = jax.numpy.ones(2)
    result = optimize.run(lambda c, a: (c + a, {"total": c.sum()}), x, 1.0, 0, driver=driver)
    assert result.history == {} and result.steps_done == 0
    np.testing.assert_array_equal(result.carry, np.ones(2))


@pytest.mark.parametrize("run", ["stylize", "sweep", "batch"])
def test_a_bad_driver_is_refused_before_any_input_is_read(run, tmp_path):
    """Before the images (here missing), the weights and the compiled step."""
    import jaxstyle

    inputs = ([], tmp_path) if run == "batch" else ("missing.jpg", "missing.jpg")
    with pytest.raises(jaxstyle.JaxstyleError, match="driver must be one of auto, python"):
        getattr(jaxstyle, run)(*inputs, driver="gpu")


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ({"name": "adam", "adam_b1": 1.0}, r"Adam b1 must be in \[0, 1\), not 1.0"),
        ({"name": "adam", "adam_b2": -0.5}, r"Adam b2 must be in \[0, 1\)"),
        ({"name": "adam", "adam_eps": float("nan")}, "Adam eps must be finite and >= 0"),
        ({"lbfgs_memory": 0}, "L-BFGS memory must be >= 1, not 0"),
        ({"linesearch_steps": 2.5}, "linesearch steps must be an integer, not 2.5"),
        ({"learning_rate": "0.1"}, "learning rate must be a number, not '0.1'"),
    ],
    ids=["b1-1", "b2-negative", "eps-nan", "memory-0", "linesearch-float", "lr-string"],
)
def test_optimizer_config_refuses_bad_hyper_parameters(setting, match):
    # taken before: Adam with b1 = 1 gave NaN pixels, L-BFGS memory 0 an optax ValueError
    # at build(), a string learning rate a TypeError from comparing it
    with pytest.raises(jaxstyle.JaxstyleError, match=match):
        optimize.OptimizerConfig(**setting)
