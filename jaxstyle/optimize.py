"""Optimising an image with Optax: optimisers, the pure step, the loop drivers.

The image is the parameter. A *loss function* here is
``loss_fn(image, args) -> (J, terms)`` for one (H, W, 3) image, with ``args``
a pytree of arrays (weights, targets, ...) so that the step can be vmapped
over a batch of images and settings.

Pixels stay in [0, 1]: Adam's iterate is projected onto the box after each
update; L-BFGS optimises J(clip(x)), so value, gradient and line search stay
consistent and the saved image clip(x) is the one whose loss is reported.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle.compiler import jit
from jaxstyle.errors import JaxstyleError, integer, number
from jaxstyle.executables import keyed

OPTIMIZERS = ("adam", "lbfgs")
DRIVERS = ("auto", "python", "device")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Which optimiser and its hyper-parameters.

    Adam (defaults as in Kingma & Ba, the learning rate in [0, 1]-pixel units)
    or L-BFGS (``optax.lbfgs`` with its zoom line search; ``learning_rate``
    is ignored since the line search picks the step).
    ``first_trial_outside_loop`` (L-BFGS): see :func:`linesearch_with_terms`;
    same iterates, up to 3x faster on XLA:CPU. ``batch_axis``: under ``vmap``
    over cells, the vmapped axis name (``jax.vmap(..., axis_name=...)``), so
    that the first trial stays outside control flow there too.
    """

    name: str = "lbfgs"
    learning_rate: float = 0.02
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    lbfgs_memory: int = 10
    linesearch_steps: int = 20
    first_trial_outside_loop: bool = True
    batch_axis: str | None = None

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise JaxstyleError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.name!r}"
            )
        for name in ("learning_rate", "adam_b1", "adam_b2", "adam_eps"):
            number(name.replace("_", " ").replace("adam", "Adam"), getattr(self, name))
        if not 0 < self.learning_rate <= np.finfo(np.float32).max:
            raise JaxstyleError(f"learning rate must be finite and > 0, not {self.learning_rate}")
        for name in ("adam_b1", "adam_b2"):  # 1 divides by 1 - b**t = 0: NaN
            if not 0 <= getattr(self, name) < 1:
                raise JaxstyleError(f"Adam {name[5:]} must be in [0, 1), not {getattr(self, name)}")
        if not 0 <= self.adam_eps < np.inf:
            raise JaxstyleError(f"Adam eps must be finite and >= 0, not {self.adam_eps}")
        for name in ("lbfgs_memory", "linesearch_steps"):
            what = name.replace("_", " ").replace("lbfgs", "L-BFGS")
            if integer(what, getattr(self, name)) < 1:
                raise JaxstyleError(f"{what} must be >= 1, not {getattr(self, name)}")

    def build(self) -> optax.GradientTransformationExtraArgs:
        if self.name == "adam":
            return optax.adam(
                self.learning_rate, b1=self.adam_b1, b2=self.adam_b2, eps=self.adam_eps
            )
        zoom = optax.scale_by_zoom_linesearch(
            max_linesearch_steps=self.linesearch_steps, initial_guess_strategy="one"
        )
        linesearch = linesearch_with_terms(
            zoom, first_trial_outside_loop=self.first_trial_outside_loop, axis_name=self.batch_axis
        )
        return optax.lbfgs(memory_size=self.lbfgs_memory, linesearch=linesearch)


class TermsLinesearchState(NamedTuple):
    """The zoom line search's state, and the loss terms {name: ()} at the iterate
    (None until :func:`make_init` sets them)."""

    zoom: Any
    terms: Any


def linesearch_with_terms(
    zoom: optax.GradientTransformationExtraArgs,
    *,
    first_trial_outside_loop: bool = True,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
    axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Optax's zoom line search, for a loss with terms; it keeps the terms of the point
    it accepts, and (by default) evaluates its first trial (step size 1) up front.

    Its update takes ``loss_fn`` (x -> (J, terms)) where the zoom takes ``value_fn``.
    The accepted point's terms come from the evaluation that accepted it, so an L-BFGS
    step reports its iterate's terms without a forward pass of its own: 1 loss and
    gradient evaluation per step where it was 1 and a forward (1.5 counting a forward
    as half). Only after a zoom search is the new point's forward pass run for them.

    ``first_trial_outside_loop``: XLA:CPU runs a loss and gradient inside
    ``while_loop``/``cond`` 3-4x slower than at top level (VGG19 at 128 px: 1.6 s
    vs 0.4 s, measured). The first trial is accepted by almost every L-BFGS step,
    so it is evaluated outside any control flow; only when it fails the strong
    Wolfe conditions (the same ones the zoom line search checks, with the same
    constants) does the zoom search run, from scratch, giving exactly its usual
    result.

    Under ``vmap`` a ``cond`` on each cell's acceptance would become a select
    that runs both branches (the zoom always). With ``axis_name``, the vmapped
    axis, the zoom is skipped when every cell accepts its trial (an unbatched
    predicate, so the ``cond`` stays one); otherwise it runs for all cells and
    those that accepted keep their trial, so each cell gets its own line search.
    """

    def init(params):
        return TermsLinesearchState(zoom.init(params), None)

    def update(updates, state, params, *, value, grad, loss_fn, **extra):
        def search():
            found, zoom_state = zoom.update(
                updates,
                state.zoom,
                params,
                value=value,
                grad=grad,
                value_fn=lambda x: loss_fn(x)[0],
                **extra,
            )
            terms = loss_fn(optax.apply_updates(params, found))[1]
            return found, TermsLinesearchState(zoom_state, terms)

        if not first_trial_outside_loop:
            return search()
        (trial_value, trial_terms), trial_grad = jax.value_and_grad(loss_fn, has_aux=True)(
            optax.apply_updates(params, updates)
        )
        slope = optax.tree.vdot(updates, grad)
        trial_slope = optax.tree.vdot(updates, trial_grad)
        accept = (trial_value <= value + slope_rtol * slope) & (
            jnp.abs(trial_slope) <= curv_rtol * jnp.abs(slope)
        )
        zoom_state = state.zoom
        info = zoom_state.info._replace(
            num_linesearch_steps=jnp.ones_like(zoom_state.info.num_linesearch_steps),
            decrease_error=jnp.zeros_like(zoom_state.info.decrease_error),
            curvature_error=jnp.zeros_like(zoom_state.info.curvature_error),
        )
        accepted = zoom_state._replace(
            learning_rate=jnp.ones_like(zoom_state.learning_rate),
            value=trial_value,
            grad=trial_grad,
            info=info,
        )

        def take_trial():
            accepted_state = optax.tree.cast_like(accepted, other_tree=zoom_state)
            return updates, TermsLinesearchState(accepted_state, trial_terms)

        def search_unless_accepted():
            out = search()
            return out if axis_name is None else optax.tree.where(accept, take_trial(), out)

        if axis_name is None:
            return jax.lax.cond(accept, take_trial, search_unless_accepted)
        every_cell_accepts = jax.lax.pmin(accept.astype(jnp.int32), axis_name) > 0
        return jax.lax.cond(every_cell_accepts, take_trial, search_unless_accepted)

    # optax's TransformUpdateExtraArgsFn protocol leaves no room for required keyword-only
    # extra args, which its own line searches' updates take (value, grad, value_fn) too
    # pyrefly: ignore[bad-argument-type]
    return optax.GradientTransformationExtraArgs(init, update)


class Carry(NamedTuple):
    """Loop state: the iterate (H, W, 3), the optimiser state and, for an objective
    that moves between steps, its state (:mod:`jaxstyle.temporal`'s neighbours; None:
    a fixed objective)."""

    image: jax.Array
    opt_state: Any
    pull: Any = None


LossFn = Callable[[jax.Array, Any], tuple[jax.Array, dict]]


def _clipped(loss_fn: LossFn) -> LossFn:
    return lambda x, args: loss_fn(jnp.clip(x, 0.0, 1.0), args)


@functools.cache
def make_init(loss_fn: LossFn, config: OptimizerConfig) -> Callable[[jax.Array, Any], Carry]:
    """``init(image, args) -> Carry``; for L-BFGS it stores J, its terms and ∇J at the
    start."""
    opt = config.build()
    if config.name == "adam":

        def adam_init(image, args):
            return Carry(image, opt.init(image))

        return keyed(adam_init, loss_fn, config)
    value_fn = _clipped(loss_fn)

    def lbfgs_init(image, args):
        (value, terms), grad = jax.value_and_grad(value_fn, has_aux=True)(image, args)
        return Carry(image, optax.tree.set(opt.init(image), value=value, grad=grad, terms=terms))

    return keyed(lbfgs_init, loss_fn, config)


@functools.cache
def make_step(
    loss_fn: LossFn, config: OptimizerConfig
) -> Callable[[Carry, Any], tuple[Carry, dict]]:
    """``step(carry, args) -> (carry, record)``: one optimiser step, pure.

    ``record`` holds the weighted loss terms and ``total`` of the image that
    entered the step (float32 scalars). L-BFGS takes J, its terms and ∇J at the
    iterate from its last line search (or init): for an objective that moved since,
    see :func:`moved`.
    """
    opt = config.build()
    if config.name == "adam":

        def adam_step(carry, args):
            (value, terms), grad = jax.value_and_grad(loss_fn, has_aux=True)(carry.image, args)
            updates, opt_state = opt.update(grad, carry.opt_state, carry.image)
            # optax types apply_updates as giving any tree, not the array it is given
            # pyrefly: ignore[bad-argument-type]
            image = jnp.clip(optax.apply_updates(carry.image, updates), 0.0, 1.0)
            return carry._replace(image=image, opt_state=opt_state), {"total": value, **terms}

        return keyed(adam_step, loss_fn, config)
    value_fn = _clipped(loss_fn)

    def lbfgs_step(carry, args):
        value, grad, terms = (
            optax.tree.get(carry.opt_state, k) for k in ("value", "grad", "terms")
        )
        updates, opt_state = opt.update(
            grad,
            carry.opt_state,
            carry.image,
            value=value,
            grad=grad,
            loss_fn=lambda x: value_fn(x, args),
        )
        # optax types apply_updates as giving any tree, not the array it is given
        # pyrefly: ignore[bad-argument-type]
        image = optax.apply_updates(carry.image, updates)
        return carry._replace(image=image, opt_state=opt_state), {"total": value, **terms}

    return keyed(lbfgs_step, loss_fn, config)


def moved(opt_state: Any, value: jax.Array, grad: jax.Array, terms: dict) -> Any:
    """An L-BFGS state (:func:`make_init`, :func:`make_step`) whose objective changed by a
    term whose value and gradient (H, W, 3) at the iterate changed by ``value`` and
    ``grad`` (the terms now ``terms``): its carried J and ∇J shifted by them, so that
    the next step needs no evaluation of its own, and its last gradient too, so that
    the curvature pair it stores next, y = ∇J(x_k) - ∇J(x_k-1), is one objective's."""
    last, carried = (optax.tree.get(opt_state, k) for k in ("updates", "grad"))
    return optax.tree.set(
        opt_state,
        updates=last + grad,
        value=optax.tree.get(opt_state, "value") + value,
        grad=carried + grad,
        terms=terms,
    )


def final_image(carry: Carry) -> jax.Array:
    """The result: the iterate clipped to [0, 1]."""
    return jnp.clip(carry.image, 0.0, 1.0)


def choose_driver(driver: str) -> str:
    """Resolve ``"auto"`` to ``"python"``: a Python loop over the jitted step, which
    queues steps on the device without waiting for them (see :func:`run`).

    Measured (scripts/bench_driver.py, scripts/bench_steps.py): on XLA:CPU (2 cores)
    the step inside ``lax.fori_loop`` ran 1.6-4x slower than from Python; on an
    H100, 500 Adam steps at 512x384 took the same time either way (bf16 0.88 s
    python vs 0.95 s device, float32 1.29 vs 1.26 s), while the device loop took
    6-8x longer to compile (12-13 s vs 1.5-2 s). ``"device"`` runs ``fori_loop``
    chunks on the device.
    """
    if driver not in DRIVERS:
        raise JaxstyleError(f"driver must be one of {', '.join(DRIVERS)}, not {driver!r}")
    return "python" if driver == "auto" else driver


@functools.cache
def device_loop(step: Callable[[Carry, Any], tuple[Carry, dict]]) -> Callable:
    """``loop(carry, history, args, start, stop)``: steps start..stop-1 in a
    ``fori_loop``, writing each step's record into the preallocated history."""

    def loop(carry, history, args, start, stop):
        def body(i, state):
            c, h = state
            c, record = step(c, args)
            return c, {k: h[k].at[i].set(v) for k, v in record.items()}

        return jax.lax.fori_loop(start, stop, body, (carry, history))

    return keyed(loop, step)


@functools.lru_cache(maxsize=16)
def _compile(fn: Callable, donate: tuple[int, ...], treedef, leaves: tuple) -> Any:
    return jit(fn, donate_argnums=donate).compile(*jax.tree.unflatten(treedef, leaves))


def compile_once(fn: Callable, *example: Any, donate: tuple[int, ...] = ()) -> Any:
    """``jax.jit(fn).lower(*example).compile()`` (with jaxstyle's XLA options, see
    :mod:`jaxstyle.compiler`), cached per function and input shapes.

    A second run of the same step on same-shaped inputs reuses the executable
    (no retrace, no recompile); in a new process, :mod:`jaxstyle.executables`
    (when enabled) loads a function :func:`~jaxstyle.executables.keyed` by its
    factory without tracing it, and jax's persistent cache saves the compile.
    Committed jax Arrays (placed with ``jax.device_put``, e.g. sharded over a
    mesh) are compiled for their sharding, which is part of the cache key.
    """
    leaves, treedef = jax.tree.flatten(example)
    return _compile(fn, donate, treedef, tuple(_abstract(x) for x in leaves))


def _abstract(x: Any) -> jax.ShapeDtypeStruct:
    sharding = x.sharding if isinstance(x, jax.Array) and x.committed else None
    return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x), sharding=sharding)


def to_host(tree: Any) -> Any:
    """NumPy copies of a pytree's arrays; an array sharded over the devices of several
    processes (``jax.distributed``) is gathered whole on every process (a collective:
    every process must call this in the same order)."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(fetch, tree)


@dataclasses.dataclass
class RunResult:
    """Final carry, per-step records {name: (steps_done, ...) np.ndarray}, seconds.

    ``steps_done`` is less than the steps asked for when ``should_stop`` ended the run.
    """

    carry: Carry
    history: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    steps_done: int


def run(
    step: Callable[[Carry, Any], tuple[Carry, dict]],
    carry: Carry,
    args: Any,
    steps: int,
    *,
    driver: str = "auto",
    chunk: int = 50,
    on_progress: Callable[[int, dict, Callable[[], Carry]], None] | None = None,
    progress_every: int = 0,
    progress_seconds: float = 0.2,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Run ``steps`` steps of ``step`` from ``carry``.

    Only the points where ``on_progress`` is called wait for the device: between
    them the steps are queued asynchronously, so a progress bar does not leave the
    accelerator idle while Python reads each step's losses.

    Args:
      on_progress: called as ``on_progress(done, record, get_carry)`` with the
        record of the last step as host arrays; ``get_carry()`` fetches the
        current carry. It is called after every ``progress_every``-th step (if
        > 0: e.g. to save images), at the first step (``python`` driver) or chunk
        end (``device``) at least ``progress_seconds`` after the previous call,
        and at the end.
      chunk: steps per on-device loop call (``device`` driver); chunks also end
        on multiples of ``progress_every``.
      should_stop: polled after every step (``python`` driver) or chunk
        (``device``); when it returns True the run ends early, its result
        holding the steps done so far (e.g. on SIGTERM, to save a checkpoint).
    """
    should_stop = should_stop or (lambda: False)
    driver = choose_driver(driver)
    last_report = time.perf_counter()

    def report(done: int, record: Callable[[], dict], get_carry: Callable[[], Carry]) -> None:
        nonlocal last_report
        due = progress_every > 0 and done % progress_every == 0
        late = time.perf_counter() - last_report >= progress_seconds
        if on_progress and (due or done == steps or late):
            on_progress(done, to_host(record()), get_carry)
            last_report = time.perf_counter()

    t0 = time.perf_counter()
    if driver == "python" or steps == 0:  # the device loop's history needs a step
        compiled = compile_once(step, carry, args, donate=(0,))
        compile_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        records = []
        done = 0
        while done < steps:
            carry, record = compiled(carry, args)
            records.append(record)
            done += 1
            report(done, lambda r=record: r, lambda c=carry: c)
            if should_stop():
                break
        history = (
            to_host({k: jnp.stack([r[k] for r in records]) for k in records[0]}) if records else {}
        )
    else:
        record_shape = jax.eval_shape(step, carry, args)[1]
        history = {k: jnp.zeros((steps, *v.shape), v.dtype) for k, v in record_shape.items()}
        compiled = compile_once(device_loop(step), carry, history, args, 0, 0, donate=(0, 1))
        compile_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        chunk = max(1, min(chunk, progress_every) if progress_every > 0 else chunk)
        done = 0
        while done < steps:
            stop = min(steps, done + chunk)
            carry, history = compiled(carry, history, args, done, stop)
            done = stop
            last = lambda h=history, i=done - 1: {k: v[i] for k, v in h.items()}  # noqa: E731
            report(done, last, lambda c=carry: c)
            if should_stop():
                break
        history = to_host({k: v[:done] for k, v in history.items()})
    jax.block_until_ready(carry)
    return RunResult(carry, history, compile_seconds, time.perf_counter() - t1, done)
