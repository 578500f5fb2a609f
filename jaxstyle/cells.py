"""Many images optimised as one compiled, vmapped, sharded and resumable run.

A *cell* is one image being optimised with its own loss weights (and, in a
batch of jobs, its own targets). :class:`CellPlan` holds N cells stacked on a
leading axis, padded to a multiple of the device groups (repeating the last
cell) and sharded over them with ``NamedSharding``: a mesh (groups, rows) of the
devices whose second axis splits each cell's image by rows (one device per group
unless asked; :mod:`jaxstyle.split_image`). One device is the same path. Each
cell keeps its own iterate and optimiser state: the solver is vmapped, so with
L-BFGS each cell runs its own line search. Sweeps (:mod:`jaxstyle.sweep`) share
one set of targets among the cells; batches (:mod:`jaxstyle.batch`) give each cell its own.

The loop state is a plain pytree (:class:`~jaxstyle.optimize.Carry` with a
leading cell axis on every leaf); with a :class:`~jaxstyle.resume.Checkpointing`
:meth:`CellPlan.run` saves it (padding dropped) every N steps and on
SIGTERM/SIGINT, and resumes from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.batching import MESH_AXIS, batched, shared_loss_fn
from jaxstyle.errors import Interrupted, JaxstyleError, signal_of, stopped_by
from jaxstyle.objective import LossArgs, LossWeights, Objective
from jaxstyle.optimize import (
    Carry,
    OptimizerConfig,
    RunResult,
    compile_once,
    final_image,
    make_init,
    make_step,
    run,
    to_host,
)
from jaxstyle.resume import Checkpointing, stop_requests
from jaxstyle.split_image import ROWS, check_devices, image_layout, rows_per_image
from jaxstyle.vgg import WinogradKernels, prepare_weights
from jaxstyle.weights import VGG19Weights

LOSSES = ("total", "content", "style", "tv")
RUN_TIMES = ("compile", "optimize", "ms_per_step")
"""The timings of :meth:`CellPlan.run` itself (the plan's own: loading, targets)."""


@dataclasses.dataclass
class CellsResult:
    """The outcome of N cells (padding dropped), images H x W.

    Attributes:
      images: (N, H, W, 3) float32 RGB in [0, 1].
      history: {"total", "content", "style", "tv": (N, steps) float32}, the
        weighted losses of the image entering each step.
      final: the same four losses of the returned images, (N,) float32.
      timings: seconds: "compile", "optimize", "ms_per_step" (for all cells
        together), and those the plan was made with ("load", "targets").
      devices: the devices the cells were sharded over.
      split_image: over how many of them each cell's rows were split (1: none).
      local: the indices of the cells held by this process's devices: all of
        them, except with ``jax.distributed`` over several processes, where each
        process writes the outputs of its own cells.
      resumed_from: the step the run resumed from (0: a fresh start).
    """

    images: np.ndarray
    history: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    timings: dict[str, float]
    devices: list[str]
    local: list[int]
    resumed_from: int = 0
    split_image: int = 1


def cell_mesh(devices: Sequence[jax.Device] | None = None, split_image: bool | int = False) -> Mesh:
    """A mesh of ``devices`` (default: every device of every process) whose axis
    :data:`~jaxstyle.batching.MESH_AXIS` shards the cells and whose axis
    :data:`~jaxstyle.split_image.ROWS` splits each cell's image by rows over
    :func:`~jaxstyle.split_image.rows_per_image` (``split_image``) consecutive
    devices of one process: (devices / rows, rows)."""
    devices = check_devices(jax.devices() if devices is None else devices)
    local = [d for d in devices if d.process_index == jax.process_index()]
    rows = rows_per_image(split_image, len(local) or len(devices))
    if len(devices) % rows:
        raise JaxstyleError(
            f"cannot split each image over {rows} of {len(devices)} devices: the "
            "number must divide the device count (the groups shard the cells)"
        )
    grid = np.array(devices).reshape(-1, rows)
    if any(len({d.process_index for d in group}) > 1 for group in grid):
        raise JaxstyleError(f"an image's rows must stay on one host's devices ({rows} per image)")
    return Mesh(grid, (MESH_AXIS, ROWS))


def cell_groups(mesh: Mesh) -> int:
    """How many groups of devices the cells are sharded over (each group splits its
    cells' rows over the mesh's other axis)."""
    return mesh.shape[MESH_AXIS]


def initialize_distributed() -> None:
    """Join the processes of a TPU pod or GPU cluster (``jax.distributed.initialize``),
    so that :func:`cell_mesh` spans the devices of every host.

    Cluster environments (Cloud TPU, SLURM, Open MPI, ...) are detected by JAX;
    elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. Call it before anything else
    touches the devices. Raises :class:`JaxstyleError` when it cannot connect.
    """

    def number(name):
        value = os.environ.get(name)
        try:
            return None if value is None else int(value)
        except ValueError:
            raise JaxstyleError(f"{name} must be an integer, not {value!r}") from None

    try:
        jax.distributed.initialize(
            num_processes=number("JAX_NUM_PROCESSES"), process_id=number("JAX_PROCESS_ID")
        )
    except (RuntimeError, ValueError) as err:
        message = " ".join(str(err).split())[:300]
        raise JaxstyleError(f"--distributed: cannot join the cluster: {message}") from None


def stack_weights(weights: Sequence[LossWeights]) -> LossWeights:
    """Stack per-cell :class:`LossWeights` into one with a leading cell axis (see
    :func:`_host_stack`)."""
    return _host_stack(weights)


def _host_stack(trees: Sequence[Any]) -> Any:
    """Stack same-shaped pytrees' leaves along a new leading axis, on the host: a
    ``jnp.stack`` of N arrays compiles an N-operand concatenation for each N (about
    13 s per loss weight for a 3000-cell sweep on a CPU), and every stacked tree is
    placed through a host copy anyway (:func:`_put`)."""
    return jax.tree.map(lambda *leaves: np.stack(jax.device_get(leaves)), *trees)


_Plan = TypeVar("_Plan", bound="CellPlan")


@dataclasses.dataclass
class CellPlan:
    """N cells ready to run: ``x0`` (padded, H, W, 3) and ``args``, a :class:`LossArgs`
    of the VGG19 weights (replicated), the targets and the stacked :class:`LossWeights`,
    with a leading cell axis on ``x0``, the weights and, if ``per_cell_targets``, the
    targets (else replicated), sharded over ``mesh``.
    """

    n: int
    steps: int
    params: VGG19Weights
    objective: Objective
    config: OptimizerConfig
    mesh: Mesh
    x0: jax.Array
    args: LossArgs
    per_cell_targets: bool
    timings: dict[str, float]

    @classmethod
    def create(
        cls: type[_Plan],
        *,
        params: VGG19Weights,
        objective: Objective,
        config: OptimizerConfig,
        steps: int,
        starts: Sequence[jax.Array],
        weights: Sequence[LossWeights],
        targets: Any,
        per_cell_targets: bool = False,
        mesh: Mesh | None = None,
        kernels: WinogradKernels | None = None,
        timings: dict[str, float] | None = None,
        **fields: Any,
    ) -> _Plan:
        """Pad, stack and place the cells' starting images (H, W, 3), loss weights and
        targets (a list of per-cell targets if ``per_cell_targets``, else one shared);
        ``kernels``: the Winograd kernels the run and its targets read (see
        :meth:`Objective.winograd_kernels`; None: all). ``fields`` are a subclass's own."""
        mesh = mesh or cell_mesh()
        n = len(starts)
        pad = -n % cell_groups(mesh)

        def padded(items, blank=lambda item: item):
            return list(items) + [blank(items[-1])] * pad

        x0 = _host_stack(padded(starts))
        cell = NamedSharding(mesh, P(MESH_AXIS))  # replicated over each cell's rows
        replicated = NamedSharding(mesh, P())
        if per_cell_targets:
            stacked = padded(targets, cls.padding_targets)
            targets = _put(_host_stack(stacked), cell)
        else:
            targets = _put(targets, replicated)
        x0 = _put(x0, image_layout(mesh, x0.shape[1:], MESH_AXIS))
        loss_weights = _put(stack_weights(padded(weights)), cell)
        vgg = _put(
            prepare_weights(params, conv_algorithm=objective.conv_algorithm, kernels=kernels),
            replicated,
        )
        config = dataclasses.replace(config, batch_axis=MESH_AXIS)
        return cls(
            n,
            steps,
            params,
            objective,
            config,
            mesh,
            x0,
            LossArgs(vgg, targets, loss_weights),
            per_cell_targets,
            dict(timings or {}),
            **fields,
        )

    @staticmethod
    def padding_targets(targets: Any) -> Any:
        """A padding cell's targets (per-cell targets), from the last cell's: the same."""
        return targets

    @property
    def padded(self) -> int:
        return self.x0.shape[0]

    @property
    def loss_fn(self) -> Callable:
        return shared_loss_fn(self.objective, self.per_cell_targets, cell_groups(self.mesh))

    def _batched(self, fn: Callable) -> Callable:
        return batched(fn, self.mesh, self.per_cell_targets)

    def _step(self) -> Callable:
        """One cell's optimiser step (:func:`~jaxstyle.optimize.make_step`)."""
        return make_step(self.loss_fn, self.config)

    def place(self, tree: Any) -> Any:
        """Put a pytree with a leading (padded) cell axis on the mesh, e.g. a restored
        carry (image-shaped leaves split by rows as well)."""
        return _put(tree, image_layout(self.mesh, self.x0.shape[1:], MESH_AXIS))

    def _init(self) -> Callable:
        """One cell's start (:func:`~jaxstyle.optimize.make_init`)."""
        return make_init(self.loss_fn, self.config)

    def _compiled_init(self) -> jax.stages.Compiled:
        return compile_once(self._batched(self._init()), self.x0, self.args)

    def init(self) -> Carry:
        """The batched starting carry (for L-BFGS with each cell's J and ∇J)."""
        return self._compiled_init()(self.x0, self.args)

    def advance(
        self,
        carry: Carry,
        steps: int,
        *,
        driver: str = "auto",
        on_progress: Callable[[int, dict, Callable[[], Carry]], None] | None = None,
        progress_every: int = 0,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunResult:
        """``steps`` steps of every cell from ``carry``; history leaves are (steps, padded);
        ``on_progress`` and ``progress_every`` as for :func:`jaxstyle.optimize.run`."""
        step = self._batched(self._step())
        return run(
            step,
            carry,
            self.args,
            steps,
            driver=driver,
            on_progress=on_progress,
            progress_every=progress_every,
            should_stop=should_stop,
        )

    def finish(
        self, carry: Carry, history: dict[str, np.ndarray], timings: dict | None = None
    ) -> CellsResult:
        """The cells' result (padding dropped) from the last carry and the history
        (leaves (steps, padded)); ``timings`` are added to the plan's."""
        n = self.n
        images = final_image(carry)
        final_fn = compile_once(self._batched(self.loss_fn), images, self.args)
        total, terms = final_fn(images, self.args)
        mine = sorted({i for s in images.addressable_shards for i in range(n)[s.index[0]]})
        images, final = to_host((images, {"total": total, **terms}))
        final = {k: v[:n] for k, v in final.items()}
        if history:
            history = {k: np.asarray(v).T[:n] for k, v in history.items()}
        else:
            history = {k: np.zeros((n, 0), np.float32) for k in LOSSES}
        devices = [str(d) for d in self.mesh.devices.flat]
        timings = {**self.timings, **(timings or {})}
        rows = self.mesh.shape[ROWS]
        return CellsResult(images[:n], history, final, timings, devices, mine, split_image=rows)

    def parts(self: _Plan, runs: Sequence[tuple[int, int]]) -> Iterator[_Plan]:
        """Each run (start, stop) of cells as a plan of its own, made as it is reached,
        padded to the first run's size (a multiple of the device groups) as
        :meth:`create` pads, so that every part runs one compiled program; they share
        this plan's VGG19 weights and shared targets (read to the host once)."""
        size = runs[0][1] - runs[0][0]
        x0, weights, targets = jax.device_get(
            (self.x0, self.args.weights, self.args.targets if self.per_cell_targets else None)
        )
        cell = NamedSharding(self.mesh, P(MESH_AXIS))
        for start, stop in runs:

            def take(tree, blank=lambda item: item, start=start, stop=stop):
                cells = [jax.tree.map(lambda v, i=i: v[i], tree) for i in range(start, stop)]
                return _host_stack(cells + [blank(cells[-1])] * (size - len(cells)))

            part_targets = self.args.targets
            if self.per_cell_targets:
                part_targets = _put(take(targets, self.padding_targets), cell)
            part_x0 = _put(take(x0), image_layout(self.mesh, x0.shape[1:], MESH_AXIS))
            args = LossArgs(self.args.vgg, part_targets, _put(take(weights), cell))
            yield dataclasses.replace(self, n=stop - start, x0=part_x0, args=args)

    def _unpad(self, tree: Any) -> Any:
        return jax.tree.map(lambda v: v[: self.n], to_host(tree))

    def _pad(self, tree: Any) -> Any:
        extra = self.padded - self.n
        return jax.tree.map(lambda v: np.concatenate([v] + [v[-1:]] * extra), tree)

    def _restore(self, saved: Any, checkpoint: Checkpointing) -> tuple[int, Carry, list[dict]]:
        """(step, carry, [history]) from a checkpoint written by :meth:`run`."""
        init = self._compiled_init()
        leaves = [saved["carry"][k] for k in sorted(saved["carry"])]
        expected = jax.tree.leaves(init.out_info)
        if [np.shape(v)[1:] for v in leaves] != [x.shape[1:] for x in expected]:
            raise JaxstyleError(
                f"checkpoint {checkpoint.directory} holds an optimiser state of another "
                "form (written by another jaxstyle version?); delete it to start over"
            )
        carry = self.place(self._pad(jax.tree.unflatten(init.out_tree, leaves)))
        history = {k: self._pad(np.asarray(v).T).T for k, v in saved["history"].items()}
        return int(saved["step"]), carry, [history]

    def _save(self, checkpoint: Checkpointing, step: int, carry: Carry, history: dict) -> None:
        leaves = jax.tree.leaves(self._unpad(carry))
        checkpoint.save(
            step,
            {
                "step": np.asarray(step, np.int64),
                "carry": {f"{i:04d}": v for i, v in enumerate(leaves)},
                "history": {k: np.asarray(v)[:, : self.n] for k, v in history.items()},
            },
        )

    def run(
        self,
        *,
        driver: str = "auto",
        progress: bool = False,
        desc: str = "cells",
        checkpoint: Checkpointing | None = None,
        callback: Callable[[int, dict, np.ndarray], None] | None = None,
        callback_every: int = 0,
        stage: str = "",
    ) -> CellsResult:
        """Initialise (or resume from ``checkpoint``), run the remaining steps and finish.
        ``stage``: what these steps are part of, said where a signal stops them (e.g.
        " of pass 2 of 3" after "at step 5 of 10").

        With ``checkpoint``, the state is saved every ``checkpoint.every`` steps
        and, on SIGTERM/SIGINT, once more before :class:`jaxstyle.Interrupted`
        is raised; a rerun resumes from the newest checkpoint and gives the same
        result as an uninterrupted run; another run into the same checkpoint
        meanwhile is refused (:meth:`Checkpointing.held`). A progress bar counts
        steps. ``callback`` is called as ``callback(step, losses, images)`` after
        every ``callback_every``-th step with the cells' losses {term: (N,)} (the
        step's record: of the images that entered it) and (N, H, W, 3) images
        (after it; e.g. to show them).
        """
        options = dict(driver=driver, progress=progress, desc=desc, checkpoint=checkpoint)
        with checkpoint.held() if checkpoint else contextlib.nullcontext():
            try:
                return self._run(
                    **options, callback=callback, callback_every=callback_every, stage=stage
                )
            except KeyboardInterrupt as err:  # a second Ctrl-C: no save, but one is kept
                kept = checkpoint.newest() if checkpoint else 0
                if checkpoint is None or not kept:
                    raise
                signum = signal_of(err)
                raise Interrupted(
                    f"{stopped_by(signum)} at once; the checkpoint of step {kept} in "
                    f"{checkpoint.directory} is kept: rerun the same command to resume",
                    signum,
                ) from None

    def _run(
        self, *, driver, progress, desc, checkpoint, callback, callback_every, stage
    ) -> CellsResult:
        """:meth:`run`, its checkpoint held."""
        from jaxstyle.progress import progress_bar

        saved = checkpoint.load() if checkpoint else None  # refuses another run's first
        t = time.perf_counter()
        init = self._compiled_init()
        compile_seconds = time.perf_counter() - t
        if checkpoint is None or saved is None:
            done, carry, histories = 0, init(self.x0, self.args), []
        else:
            done, carry, histories = self._restore(saved, checkpoint)
        resumed_from = done
        bar = progress_bar(
            progress, total=self.steps, initial=done, desc=desc, unit="step", leave=False
        )

        def on_progress(step, record, get_carry):
            total = np.asarray(record["total"])[: self.n]
            bar.set_postfix(best=f"{total.min():.3g}", worst=f"{total.max():.3g}", refresh=False)
            bar.update(start + step - bar.n)
            if callback and callback_every > 0 and (start + step) % callback_every == 0:
                losses = {k: np.asarray(v)[: self.n] for k, v in record.items()}
                callback(start + step, losses, self._unpad(final_image(get_carry())))

        run_seconds = 0.0
        stops = stop_requests() if checkpoint else contextlib.nullcontext(lambda: 0)
        with stops as stopped, bar:
            while done < self.steps:
                start = done
                segment = (checkpoint.every if checkpoint else 0) or self.steps
                result = self.advance(
                    carry,
                    min(segment, self.steps - done),
                    driver=driver,
                    on_progress=on_progress if progress or callback else None,
                    # reports on every step that is a multiple of callback_every
                    progress_every=math.gcd(callback_every, start) if callback else 0,
                    should_stop=lambda: bool(stopped()),
                )
                compile_seconds += result.compile_seconds
                run_seconds += result.run_seconds
                carry, done = result.carry, done + result.steps_done
                histories.append(result.history)
                if checkpoint and 0 < done and (done < self.steps or checkpoint.final):
                    self._save(checkpoint, done, carry, _concat(histories))
                signum = stopped()
                if checkpoint and signum and done < self.steps:
                    saved_note = (
                        f"saved a checkpoint in {checkpoint.directory}: rerun the same "
                        "command to resume"
                        if done
                        else "nothing to save yet"
                    )
                    raise Interrupted(
                        f"{stopped_by(signum)} at step {done} of {self.steps}{stage}; {saved_note}",
                        signum,
                    )
        timings = dict(
            compile=compile_seconds,
            optimize=run_seconds,
            ms_per_step=_ms_per_step(run_seconds, self.steps, resumed_from),
        )
        result = self.finish(carry, _concat(histories), timings)
        result.resumed_from = resumed_from
        return result


def _ms_per_step(optimize: float, steps: int, resumed: int, runs: int = 1) -> float:
    """Milliseconds a step of all cells took: ``optimize`` seconds over the steps run,
    ``steps`` of each of ``runs`` runs of cells (one program each) less the ``resumed``
    steps taken up from checkpoints (counted over the runs)."""
    return 1e3 * optimize * runs / max(1, runs * steps - resumed)


def join_passes(results: Sequence[CellsResult], runs: int = 1) -> CellsResult:
    """The result of a coarse-to-fine run from its passes' (in order, each in ``runs``
    runs of cells: :func:`join_cells`): the last pass's images and final losses, the
    history of every pass (steps numbered on across them), the timings summed and
    the steps resumed from counted over all passes."""
    final = results[-1]
    history = {k: np.concatenate([r.history[k] for r in results], 1) for k in final.history}
    timings = {k: sum(r.timings.get(k, 0.0) for r in results) for k in final.timings}
    resumed = sum(r.resumed_from for r in results)
    steps = history["total"].shape[1] if "total" in history else 0
    timings["ms_per_step"] = _ms_per_step(timings["optimize"], steps, resumed, runs)
    return dataclasses.replace(final, history=history, timings=timings, resumed_from=resumed)


def join_cells(results: Sequence[CellsResult]) -> CellsResult:
    """The result of cells run in consecutive parts (:meth:`CellPlan.parts`, in
    order): their images, histories and final losses one after another, the
    :data:`RUN_TIMES` summed (``ms_per_step``: a step of every part's cells, those taken
    up from checkpoints not counted), ``local`` counted over all cells, the steps taken up
    from checkpoints summed over the parts."""
    first, starts = results[0], np.cumsum([0] + [len(r.images) for r in results])
    joined = {
        "images": np.concatenate([r.images for r in results]),
        "history": {k: np.concatenate([r.history[k] for r in results]) for k in first.history},
        "final": {k: np.concatenate([r.final[k] for r in results]) for k in first.final},
    }
    timings = {k: sum(r.timings[k] for r in results) for k in RUN_TIMES}
    resumed = sum(r.resumed_from for r in results)
    steps = first.history["total"].shape[1] if "total" in first.history else 0
    timings["ms_per_step"] = _ms_per_step(timings["optimize"], steps, resumed, len(results))
    return dataclasses.replace(
        first,
        **joined,
        timings={**first.timings, **timings},
        local=[int(a) + i for a, r in zip(starts[:-1], results, strict=True) for i in r.local],
        resumed_from=resumed,
    )


def _put(tree: Any, sharding: NamedSharding | Callable[[Any], NamedSharding]) -> Any:
    """Place a pytree by way of host copies (with ``jax.distributed``, every process
    holds the same values and the mesh spans devices of other processes) on one
    ``sharding``, or on ``sharding(leaf)`` for each leaf."""
    tree = jax.device_get(tree)
    if isinstance(sharding, jax.sharding.Sharding):
        return jax.device_put(tree, sharding)
    return jax.device_put(tree, jax.tree.map(sharding, tree))


def _concat(histories: list[dict]) -> dict:
    """Join per-segment histories {name: (steps_i, padded)} along the step axis."""
    histories = [h for h in histories if h]
    if not histories:
        return {}
    return {k: np.concatenate([np.asarray(h[k]) for h in histories]) for k in histories[0]}
