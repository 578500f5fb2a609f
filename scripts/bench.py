"""Benchmark jaxstyle against a plain PyTorch eager reference of the same objective.

Both run the same objective (VGG19 weights, layers, preset, images, optimiser,
number of steps); for each configuration (size x batch x optimiser) the two are
timed alternately in one process (jax, torch, jax, torch, ...) so that machine
noise hits both alike, after checking that they agree on the loss of the same
starting image (1e-4 relative, 2e-2 with ``--compute-dtype bfloat16``, where
jaxstyle's convolutions run in bf16 and the reference stays float32; the run
aborts otherwise).

    python scripts/bench.py                       # 128/256/512 px, batch 1/8, Adam/L-BFGS
    python scripts/bench.py --quick               # 128 px, batch 1, Adam
    python scripts/bench.py --markdown perf.md    # the table for the README
    python scripts/bench.py --frameworks jax      # without torch
    python scripts/bench.py --write-readme README.md   # the README's Performance table
    python scripts/bench.py --compute-dtype bfloat16   # jaxstyle's convolutions in bf16

torch is only needed for the reference (``pip install -e .[bench]``).

Columns:
  ms/step       median over ``--repeats`` timed runs of (run seconds / optimiser
                steps); a run starts from the initial image with a fresh
                optimiser state and its time includes the optimiser's init (for
                L-BFGS: J and its gradient at the start) and the final sync.
  steps/s       1000 / ms/step. images/s: batch * steps/s.
  evals/step    loss-and-gradient evaluations per step per image (Adam: 1;
                L-BFGS: all line-search trials, the init counted once); a jaxstyle
                L-BFGS step whose line search needed the zoom search also does one
                forward-only pass for the new point's loss terms, counted as half an
                evaluation.
  peak MiB      CPU: peak resident memory (VmHWM, reset after warm-up and after
                handing freed heap back to the OS with malloc_trim) while the
                steps run, minus the resident memory after imports, weights and
                images, in a fresh subprocess per framework and configuration: it
                counts compiled programs, jaxstyle's device copy of the weights
                with their transposed kernels, targets, optimiser state and the
                steps' activations.
                GPU: torch's peak allocated memory while stepping minus that before
                set-up; jax's device memory in use after stepping minus that before
                set-up, plus the step's temporary buffers (XLA's memory analysis):
                the device's own peak counter also counts the autotuner's scratch.
  compile s     jax only: lowering + compiling the step, in a fresh subprocess,
                "cold" with an empty persistent compilation cache, "warm" in a
                second subprocess reading the cache the first one wrote.
  GFLOP/s       analytic FLOPs per step (``jaxstyle.architecture.forward_macs``) * batch /
                seconds per step.
  % peak        GFLOP/s as a fraction of the measured float32 matmul rate of the
                CPU (numpy sgemm) or of the GPU's dense TF32 peak from a table.

FLOP count: a 3x3 convolution (SAME padding, stride 1) on an h x w input costs
MACs = h*w*9*Cin*Cout; a forward pass costs FLOPs_fwd = 2 * sum of MACs over the
convolutions up to the deepest layer the objective reads (ReLUs, pooling, Gram
matrices (about 5% more), losses and optimiser updates are not counted). A loss
evaluation with its image gradient costs about two forwards (the backward to the
image has the forward's MACs; no weight gradients), so

    FLOPs/step/image = FLOPs_fwd * (2 * evals/step + forward-only passes/step)

i.e. 4 * MACs for an Adam step.

Notes: torch's L-BFGS with batch > 1 optimises the sum of the images' losses as
one problem (one line search); jaxstyle vmaps independent L-BFGS runs. Under
``vmap`` a ``lax.cond`` with a per-image predicate runs both branches and a
``while_loop`` runs until every image is done, so the work jax executes can
exceed the evaluations counted here.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONTENT = ROOT.parent / "shared" / "images" / "tubingen.jpg"
DEFAULT_STYLE = ROOT.parent / "shared" / "images" / "starry_night.jpg"
PROBE_TAG = "BENCH_PROBE "
AGREEMENT_RTOL = {"float32": 1e-4, "bfloat16": 2e-2}
BATCH_AXIS = "images"  # the vmapped axis of batch > 1 (L-BFGS's OptimizerConfig.batch_axis)
README_BLOCK = "bench"  # the README's markers: <!-- bench:start --> ... <!-- bench:end -->

# Dense peaks in TFLOP/s: (fp32 CUDA cores, tf32 tensor cores, bf16 tensor cores).
# float32 convolutions run on TF32 tensor cores by default in both XLA and cuDNN.
GPU_PEAKS_TFLOPS = {
    "H200": (67.0, 494.7, 989.4),
    "H100 PCIe": (51.2, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.4),
    "A100": (19.5, 156.0, 312.0),
}


# ----------------------------------------------------------------------------- machine


def measure_matmul_gflops(n: int = 2048, repeats: int = 7) -> float:
    """float32 n x n matmul rate of numpy's BLAS on this machine (median), GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / statistics.median(times) / 1e9


def gpu_peak_gflops(device_kind: str, compute_dtype: str) -> tuple[float, str] | None:
    """(dense peak in GFLOP/s, its label) of a known GPU for float32 (TF32 tensor cores)
    or bfloat16 convolutions, else None."""
    for key, (_fp32, tf32, bf16) in GPU_PEAKS_TFLOPS.items():
        if key.lower() in device_kind.lower():
            if compute_dtype == "bfloat16":
                return bf16 * 1e3, f"{key} dense BF16 peak (table)"
            return tf32 * 1e3, f"{key} dense TF32 peak (table)"
    return None


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.+)", text)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_ram_gib() -> float | None:
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return kib / 2**20
    except (OSError, AttributeError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(frameworks: list[str]) -> dict:
    """Machine, backend and package versions for the report header."""
    import jax

    from jaxstyle.provenance import versions

    device = jax.devices()[0]
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "ram_gib": _total_ram_gib(),
        "os": platform.platform(),
        "jax_backend": jax.default_backend(),
        "device": device.device_kind,
        "versions": versions(["torch"] if "torch" in frameworks else []),
    }


# ----------------------------------------------------------------------------- memory


def _proc_status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def current_rss_bytes() -> int:
    """Resident memory of this process now (ru_maxrss where /proc is missing)."""
    kib = _proc_status_kib("VmRSS")
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def release_free_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``), so that memory
    the compiler or set-up freed is not counted as the steps' footprint."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory since the last :func:`reset_peak_rss` (or process start)."""
    kib = _proc_status_kib("VmHWM")
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


# ----------------------------------------------------------------------------- configurations


@dataclasses.dataclass(frozen=True)
class Config:
    """One benchmarked configuration."""

    size: int
    batch: int
    optimizer: str


@dataclasses.dataclass
class Inputs:
    """Shared inputs of one configuration: (H, W, 3) images and (B, H, W, 3) starts."""

    settings: object
    preset: object
    objective: object
    content: np.ndarray
    style: np.ndarray
    x0: np.ndarray


@dataclasses.dataclass
class RunStats:
    """One timed run: wall seconds, optimiser steps done, evaluations per image."""

    seconds: float
    steps: int
    evals: float
    forwards: float


def make_inputs(params, config: Config, a: argparse.Namespace) -> Inputs:
    """Resolve the preset's settings and load/resize the images as jaxstyle.stylize does."""
    from jaxstyle.inputs import initial_image, prepare_images
    from jaxstyle.presets import get_preset
    from jaxstyle.settings import resolve_settings

    settings = resolve_settings(
        a.preset,
        size=config.size,
        optimizer=config.optimizer,
        compute_dtype=a.compute_dtype,
        conv_algorithm=a.conv_algorithm,
    )
    preset = get_preset(settings.preset)
    content, styles, _ = prepare_images(a.content, a.style, settings)
    shape = content.shape[:2]
    x0 = np.stack(
        [
            np.asarray(initial_image(settings.init, content, shape, settings.seed + i))
            for i in range(config.batch)
        ]
    ).astype(np.float32)
    return Inputs(settings, preset, settings.objective(preset), content, styles[0], x0)


# ----------------------------------------------------------------------------- jaxstyle


class JaxCase:
    """jaxstyle's own path: compute_targets, make_loss_fn, make_init/make_step, and
    jaxstyle's ``jit`` (its XLA options, :mod:`jaxstyle.compiler`).

    Batch 1 runs the step as ``stylize`` does; batch B > 1 vmaps init and step
    over the B images with the targets and weights shared, through the loss
    function of jaxstyle's sweeps (``shared_loss_fn``: VGG19 runs on the B
    images at once) and with L-BFGS's ``batch_axis`` set as there (the zoom line
    search runs only when some image rejects its first trial). ``compile_only``
    lowers the step from abstract shapes only (for the compile-time probe; the
    program and so its persistent-cache key are the same) and cannot ``run``.
    """

    framework = "jax"

    def __init__(self, params, inputs: Inputs, batch: int, *, compile_only: bool = False):
        import jax
        import jax.numpy as jnp

        from jaxstyle.batching import shared_loss_fn
        from jaxstyle.compiler import jit
        from jaxstyle.estimate import memory_sizes
        from jaxstyle.objective import LossArgs, compute_targets, make_loss_fn
        from jaxstyle.optimize import make_init, make_step
        from jaxstyle.vgg import prepare_weights

        s, objective = inputs.settings, inputs.objective
        self.config = s.optimizer_config(inputs.preset)
        self.batched = batch > 1
        if self.batched:  # as jaxstyle's sweeps and batches: the zoom search only when needed
            self.config = dataclasses.replace(self.config, batch_axis=BATCH_AXIS)

        def targets_of(content, style):
            return compute_targets(params, objective, content, [style])

        content, style = jnp.asarray(inputs.content), jnp.asarray(inputs.style)
        if compile_only:
            targets = jax.eval_shape(targets_of, content, style)
        else:
            targets = targets_of(content, style)
        kernels = objective.winograd_kernels(content.shape[:2], [style.shape[:2]], batch)
        vgg = prepare_weights(params, conv_algorithm=objective.conv_algorithm, kernels=kernels)
        self.args = jax.block_until_ready(LossArgs(vgg, targets, s.loss_weights()))
        self.loss_fn = shared_loss_fn(objective) if self.batched else make_loss_fn(objective)
        init = make_init(self.loss_fn, self.config)
        step = make_step(self.loss_fn, self.config)
        if self.config.name == "lbfgs":
            step = _with_linesearch_count(step)

        x0 = inputs.x0 if self.batched else inputs.x0[0]
        if self.batched:
            init = jax.vmap(init, in_axes=(0, None), axis_name=BATCH_AXIS)
            step = jax.vmap(step, in_axes=(0, None), axis_name=BATCH_AXIS)
        self.x0 = jax.device_put(x0)
        if compile_only:
            self.init, carry = None, jax.eval_shape(init, self.x0, self.args)
        else:
            self.init = jit(init).lower(self.x0, self.args).compile()
            carry = self.init(self.x0, self.args)
        t = time.perf_counter()
        self.step = jit(step, donate_argnums=0).lower(carry, self.args).compile()
        self.compile_seconds = time.perf_counter() - t
        self.memory_analysis = memory_sizes(self.step)

    def initial_loss(self) -> float:
        """J of the first starting image."""
        from jaxstyle.compiler import jit

        x = self.x0[0] if self.batched else self.x0
        return float(jit(self.loss_fn)(x, self.args)[0])

    def run(self, steps: int) -> RunStats:
        """Init + ``steps`` steps from the starting images, synchronised at the end."""
        import jax
        import jax.numpy as jnp

        x = jax.block_until_ready(jnp.array(self.x0, copy=True))  # the step donates its carry
        t = time.perf_counter()
        carry = self.init(x, self.args)
        searches = []
        for _ in range(steps):
            carry, record = self.step(carry, self.args)
            if "linesearch_steps" in record:
                searches.append(record["linesearch_steps"])
        jax.block_until_ready(carry)
        seconds = time.perf_counter() - t
        if self.config.name == "adam":
            return RunStats(seconds, steps, float(steps), 0.0)
        # init's evaluation + every line-search trial; a step whose up-front trial was
        # rejected (then the zoom takes 2 or more trials) evaluated that trial once more
        # and ran one forward pass for the new point's terms. Mean over the batch.
        if not steps:
            return RunStats(seconds, steps, 1.0, 0.0)
        trials = np.stack([np.asarray(n) for n in searches])  # (steps,) or (steps, batch)
        zoomed = trials > 1 if self.config.first_trial_outside_loop else np.ones_like(trials)
        evals = 1.0 + np.mean(np.sum(trials + zoomed * self.config.first_trial_outside_loop, 0))
        return RunStats(seconds, steps, float(evals), float(np.mean(np.sum(zoomed, 0))))


def _with_linesearch_count(step):
    """The L-BFGS step, also returning its line search's trial count in the record."""
    import optax

    def counted(carry, args):
        carry, record = step(carry, args)
        trials = optax.tree.get(carry.opt_state, "num_linesearch_steps")
        return carry, {**record, "linesearch_steps": trials}

    return counted


# ----------------------------------------------------------------------------- PyTorch reference


def torch_device(jax_backend: str) -> str:
    """'cuda' when jax runs on a GPU and torch sees one, else 'cpu'."""
    import torch

    return "cuda" if jax_backend == "gpu" and torch.cuda.is_available() else "cpu"


def _torch_reduce(values, dims, reduction: str):
    if reduction == "sum":
        return values.sum(dims)
    if reduction == "half_sum":
        return 0.5 * values.sum(dims)
    if reduction == "mean":
        return values.mean(dims)
    raise ValueError(f"unknown reduction {reduction!r}")


class TorchCase:
    """The objective in plain PyTorch eager mode, NCHW, from the same weights.

    VGG19 as ``nn.Conv2d``/``ReLU``/pooling up to the deepest layer read; the
    preprocessing, Gram normalisation, reductions, TV term and weights follow
    ``jaxstyle.losses`` and the preset's ``Objective``. Adam is
    ``torch.optim.Adam`` with a clamp to [0, 1] after each step; L-BFGS is
    ``torch.optim.LBFGS`` (history 10, strong Wolfe) on J(clamp(x)), one
    ``step`` call of ``max_iter`` = steps with the tolerances off. On CUDA,
    ``cudnn.benchmark`` is on; convolutions run in TF32 (torch's default), as
    jax's float32 convolutions do on GPU.
    """

    framework = "torch"

    def __init__(self, params, inputs: Inputs, batch: int, device: str, threads: int):
        import torch

        from jaxstyle.architecture import CONV_SHAPES, LAYER_INDEX, LAYER_NAMES, deepest

        torch.set_num_threads(threads)
        if device == "cuda":  # cuDNN picks the fastest algorithms, as jax's autotuner does
            torch.backends.cudnn.benchmark = True
        self.torch, self.device = torch, device
        s, self.objective = inputs.settings, inputs.objective
        self.config = s.optimizer_config(inputs.preset)
        pre = params.preprocessing
        self.bgr, self.scale = pre.bgr, pre.scale
        self.mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        modules = []
        for name in LAYER_NAMES[: LAYER_INDEX[deepest(self.objective.layers)] + 1]:
            if name.startswith("conv"):
                c_in, c_out = CONV_SHAPES[name]
                conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
                kernel = np.transpose(np.asarray(params.params[name]["kernel"]), (3, 2, 0, 1))
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
                    conv.bias.copy_(torch.from_numpy(np.asarray(params.params[name]["bias"])))
                module = conv
            elif name.startswith("relu"):
                module = torch.nn.ReLU()
            elif self.objective.pooling == "max":
                module = torch.nn.MaxPool2d(2, 2)
            else:
                module = torch.nn.AvgPool2d(2, 2)
            modules.append((name, module.to(device).requires_grad_(False)))
        self.layers = modules
        w = s.loss_weights()
        self.alpha, self.beta, self.gamma = float(w.content), float(w.style), float(w.tv)
        self.layer_weights = dict(
            zip(self.objective.style_layers, map(float, w.style_layers), strict=True)
        )
        with torch.no_grad():
            content = self._features(
                self._nchw(inputs.content[None]), self.objective.content_layers
            )
            style = self._features(self._nchw(inputs.style[None]), self.objective.style_layers)
            self.content_targets = content
            self.style_targets = {k: self._gram(v) for k, v in style.items()}
        self.x0 = self._nchw(inputs.x0)
        self.compile_seconds = None
        self.memory_analysis = None

    def _nchw(self, images: np.ndarray):
        array = np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)), np.float32)
        return self.torch.from_numpy(array).to(self.device)

    def _features(self, x, names) -> dict:
        """Activations {name: (N, C, h, w)} of RGB [0, 1] images (N, 3, H, W)."""
        if self.bgr:
            x = x.flip(1)
        x = (x * self.scale - self.mean) / self.std
        wanted, out = set(names), {}
        for name, module in self.layers:
            x = module(x)
            if name in wanted:
                out[name] = x
        return out

    def _gram(self, f):
        n, c, h, w = f.shape
        flat = f.reshape(n, c, h * w)
        gram = flat @ flat.transpose(1, 2)
        norm = self.objective.gram_normalize
        if norm == "none":
            return gram
        return gram / (h * w) if norm == "hw" else gram / (c * h * w)

    def loss(self, x):
        """J per image, shape (N,), for images (N, 3, H, W) in [0, 1]."""
        o = self.objective
        acts = self._features(x, o.layers)
        content = sum(
            _torch_reduce(
                (acts[k] - self.content_targets[k]).square(), (1, 2, 3), o.content_reduction
            )
            for k in o.content_layers
        )
        style = 0.0
        for k in o.style_layers:
            f = acts[k]
            squared = (self._gram(f) - self.style_targets[k]).square()
            if o.style_reduction == "gatys":
                c, positions = f.shape[1], f.shape[2] * f.shape[3]
                layer = squared.sum((1, 2)) / (4.0 * c**2 * float(positions) ** 2)
            else:
                layer = _torch_reduce(squared, (1, 2), o.style_reduction)
            style = style + self.layer_weights[k] * layer
        p = x * o.tv_pixel_scale
        dy, dx = p[:, :, 1:, :] - p[:, :, :-1, :], p[:, :, :, 1:] - p[:, :, :, :-1]
        dy, dx = (dy.abs(), dx.abs()) if o.tv_power == 1 else (dy.square(), dx.square())
        tv = _torch_reduce(dy, (1, 2, 3), o.tv_reduction) + _torch_reduce(
            dx, (1, 2, 3), o.tv_reduction
        )
        return self.alpha * content + self.beta * style + self.gamma * tv

    def initial_loss(self) -> float:
        """J of the first starting image."""
        with self.torch.no_grad():
            return float(self.loss(self.x0[:1])[0])

    def _sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def run(self, steps: int) -> RunStats:
        """``steps`` optimiser steps from the starting images, synchronised at the end."""
        torch = self.torch
        x = self.x0.clone().requires_grad_(True)
        c = self.config
        self._sync()
        t = time.perf_counter()
        if c.name == "adam":
            opt = torch.optim.Adam(
                [x], lr=c.learning_rate, betas=(c.adam_b1, c.adam_b2), eps=c.adam_eps
            )
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                self.loss(x).sum().backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
            self._sync()
            return RunStats(time.perf_counter() - t, steps, float(steps), 0.0)
        opt = torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=steps,
            max_eval=10**9,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            history_size=c.lbfgs_memory,
            line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad(set_to_none=True)
            value = self.loss(x.clamp(0.0, 1.0)).sum()
            value.backward()
            return value

        if steps:
            opt.step(closure)
        self._sync()
        seconds = time.perf_counter() - t
        state = opt.state[x]
        iterations, evals = int(state.get("n_iter", 0)), float(state.get("func_evals", 0))
        return RunStats(seconds, iterations, evals, 0.0)


# ----------------------------------------------------------------------------- cases and probes


def make_case(framework: str, params, inputs: Inputs, batch: int, a: argparse.Namespace):
    """A JaxCase or TorchCase for one configuration."""
    if framework == "jax":
        return JaxCase(params, inputs, batch)
    return TorchCase(params, inputs, batch, torch_device(a.backend), a.torch_threads)


def probe_main(a: argparse.Namespace) -> None:
    """Subprocess entry: build one case; print compile time and peak memory as JSON.

    ``--_cache-dir`` points jax's persistent compilation cache at a directory
    (empty for a cold compile, filled by a previous probe for a warm one).
    """
    import jax

    if a._cache_dir:
        jax.config.update("jax_compilation_cache_dir", a._cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if a._probe == "torch":
        import torch  # noqa: F401 - its libraries belong to the baseline

    from jaxstyle.weights import load_vgg19

    params = load_vgg19(a.weights)
    config = Config(a.sizes[0], a.batch[0], a.optimizers[0])
    inputs = make_inputs(params, config, a)
    a.backend = jax.default_backend()
    gpu = a.backend == "gpu"
    out: dict = {}
    if gpu and a._probe == "jax":
        stats = jax.local_devices()[0].memory_stats() or {}
        base = stats.get("bytes_in_use", 0)
    elif gpu:
        import torch

        base = torch.cuda.memory_allocated()
    else:
        base = current_rss_bytes()
    if a._probe == "jax":
        case = JaxCase(params, inputs, config.batch, compile_only=not a._memory)
    else:
        case = make_case(a._probe, params, inputs, config.batch, a)
    out["compile_seconds"] = case.compile_seconds
    out["memory_analysis"] = case.memory_analysis
    if a._memory:
        case.run(1)
        if gpu and a._probe == "jax":
            # The device's peak counter also holds the autotuner's scratch buffers
            # (compiling the target programs), so: what stays in use + the step's temps.
            case.run(a.steps)
            gc.collect()
            stats = jax.local_devices()[0].memory_stats() or {}
            temp = (case.memory_analysis or {}).get("temp", 0)
            out["peak_bytes"] = stats.get("bytes_in_use", 0) - base + temp
            out["peak_method"] = "jax: device bytes in use after stepping - before + XLA step temps"
        elif gpu:
            import torch

            torch.cuda.reset_peak_memory_stats()
            case.run(a.steps)
            out["peak_bytes"] = torch.cuda.max_memory_allocated() - base
            out["peak_method"] = "cuda max_memory_allocated - before"
        else:
            gc.collect()
            release_free_heap()
            exact = reset_peak_rss()
            before = current_rss_bytes()
            case.run(a.steps)
            out["peak_bytes"] = peak_rss_bytes() - base
            out["step_transient_bytes"] = peak_rss_bytes() - before if exact else None
            out["peak_method"] = (
                "peak RSS while stepping (after malloc_trim) - RSS after loading"
                if exact
                else "process peak RSS (compilation included) - RSS after loading"
            )
    print(PROBE_TAG + json.dumps(out), flush=True)


def run_probe(
    framework: str, config: Config, a: argparse.Namespace, *, cache_dir: str | None, memory: bool
) -> dict | None:
    """Run :func:`probe_main` in a fresh Python; its JSON, or None (with a warning)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_probe",
        framework,
        "--sizes",
        str(config.size),
        "--batch",
        str(config.batch),
        "--optimizers",
        config.optimizer,
        "--steps",
        str(a.steps),
        "--preset",
        a.preset,
        "--compute-dtype",
        a.compute_dtype,
        "--conv-algorithm",
        a.conv_algorithm,
        "--content",
        str(a.content),
        "--style",
        str(a.style),
        "--torch-threads",
        str(a.torch_threads),
    ]
    cmd += ["--weights", str(a.weights)] if a.weights else []
    cmd += ["--_cache-dir", cache_dir] if cache_dir else []
    cmd += ["--_memory"] if memory else []
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(PROBE_TAG):
            return json.loads(line[len(PROBE_TAG) :])
    tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
    print(f"warning: {framework} probe for {config} failed:\n{tail}", file=sys.stderr)
    return None


def probe_config(config: Config, frameworks: list[str], a: argparse.Namespace) -> dict:
    """Compile (jax: cold, then warm) and peak memory of each framework, in subprocesses."""
    found: dict = {fw: {} for fw in frameworks}
    if "jax" in frameworks:
        cache = tempfile.mkdtemp(prefix="jaxstyle-bench-cache-")
        try:
            cold = run_probe("jax", config, a, cache_dir=cache, memory=False)
            warm = run_probe("jax", config, a, cache_dir=cache, memory=True)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        found["jax"] = {
            "compile_cold_s": cold and cold["compile_seconds"],
            "compile_warm_s": warm and warm["compile_seconds"],
            "peak_bytes": warm and warm.get("peak_bytes"),
            "peak_method": warm and warm.get("peak_method"),
            "step_transient_bytes": warm and warm.get("step_transient_bytes"),
            "xla_memory_analysis": warm and warm.get("memory_analysis"),
        }
    if "torch" in frameworks:
        probe = run_probe("torch", config, a, cache_dir=None, memory=True)
        found["torch"] = {
            "peak_bytes": probe and probe.get("peak_bytes"),
            "peak_method": probe and probe.get("peak_method"),
            "step_transient_bytes": probe and probe.get("step_transient_bytes"),
        }
    return found


# ----------------------------------------------------------------------------- one configuration


def bench_config(
    config: Config, params, frameworks: list[str], a: argparse.Namespace, peak_gflops: float
) -> list[dict]:
    """Check agreement, then time the frameworks alternately; one result row per framework."""
    from jaxstyle.architecture import deepest, forward_macs
    from jaxstyle.estimate import flops_per_step

    probes = probe_config(config, frameworks, a) if a.probes else {fw: {} for fw in frameworks}
    inputs = make_inputs(params, config, a)
    height, width = inputs.content.shape[:2]
    macs = forward_macs(height, width, deepest(inputs.objective.layers))
    cases = {fw: make_case(fw, params, inputs, config.batch, a) for fw in frameworks}
    losses = {fw: case.initial_loss() for fw, case in cases.items()}
    label = f"{config.optimizer} {height}x{width} batch {config.batch}"
    print(
        f"[{label}] initial loss " + ", ".join(f"{k} {v:.7g}" for k, v in losses.items()),
        flush=True,
    )
    if "jax" in losses and "torch" in losses:
        rel = abs(losses["jax"] - losses["torch"]) / abs(losses["torch"])
        rtol = AGREEMENT_RTOL[a.compute_dtype]
        if not rel <= rtol:
            sys.exit(
                f"jax and torch disagree on the initial loss ({rel:.2e} relative > "
                f"{rtol:g}); not timing different objectives"
            )

    for case in cases.values():  # warm-up: first-call allocations, oneDNN primitives
        case.run(min(a.steps, 2))
    runs: dict[str, list[RunStats]] = {fw: [] for fw in frameworks}
    for _ in range(a.repeats):
        for fw in frameworks:  # alternate: jax, torch, jax, torch, ...
            gc.collect()
            gc.disable()
            try:
                runs[fw].append(cases[fw].run(a.steps))
            finally:
                gc.enable()
            time.sleep(0.1)  # let the other framework's worker threads go idle
    rows = []
    for fw in frameworks:
        per_step = [r.seconds / max(1, r.steps) for r in runs[fw]]
        seconds = statistics.median(per_step)
        steps = max(1, statistics.mean(r.steps for r in runs[fw]))
        evals = statistics.mean(r.evals for r in runs[fw]) / steps
        forwards = statistics.mean(r.forwards for r in runs[fw]) / steps
        flops = flops_per_step(macs, evals, forwards)
        gflops = flops * config.batch / seconds / 1e9
        rows.append(
            {
                "framework": fw,
                "optimizer": config.optimizer,
                "size": config.size,
                "height": height,
                "width": width,
                "batch": config.batch,
                "ms_per_step": 1e3 * seconds,
                "ms_per_step_runs": [1e3 * s for s in per_step],
                "steps_per_s": 1.0 / seconds,
                "images_per_s": config.batch / seconds,
                "steps_per_run": statistics.mean(r.steps for r in runs[fw]),
                "evals_per_step": evals + 0.5 * forwards,
                "loss_grad_evals_per_step": evals,
                "forward_only_per_step": forwards,
                "forward_gmacs": macs / 1e9,
                "gflop_per_step_per_image": flops / 1e9,
                "gflops": gflops,
                "peak_fraction": gflops / peak_gflops,
                "compile_inprocess_s": cases[fw].compile_seconds,
                "initial_loss": losses[fw],
                **{
                    k: None
                    for k in ("compile_cold_s", "compile_warm_s", "peak_bytes", "peak_method")
                },
                **probes.get(fw, {}),
            }
        )
    return rows


# ----------------------------------------------------------------------------- output

COLUMNS = [
    ("framework", "framework", "{}"),
    ("optimizer", "optimizer", "{}"),
    ("size", "size", "{}"),
    ("batch", "batch", "{}"),
    ("ms_per_step", "ms/step", "{:.1f}"),
    ("steps_per_s", "steps/s", "{:.2f}"),
    ("images_per_s", "images/s", "{:.2f}"),
    ("evals_per_step", "evals/step", "{:.2f}"),
    ("peak_mib", "peak MiB", "{:.0f}"),
    ("compile_cold_s", "compile cold s", "{:.1f}"),
    ("compile_warm_s", "compile warm s", "{:.1f}"),
    ("gflops", "GFLOP/s", "{:.1f}"),
    ("peak_percent", "% peak", "{:.1f}"),
]


def _cells(row: dict) -> list[str]:
    values = {
        **row,
        "size": f"{row['height']}x{row['width']}",
        "peak_mib": None if row.get("peak_bytes") is None else row["peak_bytes"] / 2**20,
        "peak_percent": 100.0 * row["peak_fraction"],
    }
    return ["-" if values.get(k) is None else fmt.format(values[k]) for k, _, fmt in COLUMNS]


def ratio_lines(rows: list[dict]) -> list[str]:
    """'jax/torch' ms-per-step ratio of each configuration that has both."""
    lines = []
    by_config: dict = {}
    for row in rows:
        by_config.setdefault((row["optimizer"], row["height"], row["width"], row["batch"]), {})[
            row["framework"]
        ] = row
    for (opt, h, w, b), pair in by_config.items():
        if "jax" in pair and "torch" in pair:
            r = pair["jax"]["ms_per_step"] / pair["torch"]["ms_per_step"]
            faster = "jax faster" if r < 1 else "torch faster"
            lines.append(f"jax/torch ms/step {opt} {h}x{w} batch {b}: {r:.2f} ({faster})")
    return lines


def text_table(rows: list[dict]) -> str:
    """Fixed-width table for the terminal."""
    header = [title for _, title, _ in COLUMNS]
    body = [_cells(r) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)) for line in [header, *body]
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def header_lines(report: dict) -> list[str]:
    """Machine, versions and settings, one fact per line."""
    m, s = report["machine"], report["settings"]
    ram = f", {m['ram_gib']:.0f} GiB RAM" if m.get("ram_gib") else ""
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return [
        f"Machine: {m['cpu']}, {m['usable_cpus']} of {m['cpus']} CPUs usable{ram}; {m['os']}",
        f"Backend: jax {m['jax_backend']} ({m['device']})"
        + (
            f"; torch {s['torch_device']}, {s['torch_threads']} threads"
            if s.get("torch_device")
            else ""
        ),
        f"Versions: {versions}",
        f"Peak reference: {report['peak_gflops']:.0f} GFLOP/s ({report['peak_source']})",
        f"Objective: preset {s['preset']}, content {s['content']}, style {s['style']}, "
        f"jaxstyle convolutions in {s['compute_dtype']}"
        + (f" ({s['conv_algorithm']} in blocks 3-5)" if "conv_algorithm" in s else "")
        + (f", XLA options {s['xla_options']}; " if s.get("xla_options") else "; ")
        + f"{s['steps']} steps per run, median of {s['repeats']} runs, frameworks alternated",
        f"Date: {report['date']}; command: {report['command']}"
        + ("" if report.get("complete", True) else " (stopped before its last configuration)"),
    ]


def markdown(report: dict) -> str:
    """The report as Markdown: header list, table, ratios, column notes."""
    header = [title for _, title, _ in COLUMNS]
    lines = ["<!-- written by scripts/bench.py; do not edit by hand -->", ""]
    lines += [f"- {line}" for line in header_lines(report)]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in report["results"]]
    ratios = ratio_lines(report["results"])
    if ratios:
        lines += [""] + [f"- {line}" for line in ratios]
    methods = sorted({r["peak_method"] for r in report["results"] if r.get("peak_method")})
    lines += [
        "",
        "ms/step: median over runs of run time / steps (a run: optimiser init + steps, from the "
        "same start). evals/step: loss+gradient evaluations per step (a forward-only pass counts "
        "½). GFLOP/s: analytic VGG19 convolution FLOPs (2·h·w·9·Cin·Cout per conv per forward, "
        "2 forwards per evaluation) / time. % peak: of the reference rate above. "
        "compile: jax step lower+compile in a fresh process, with an empty / a filled persistent "
        "cache." + (f" peak MiB: {'; '.join(methods)}." if methods else ""),
    ]
    return "\n".join(lines) + "\n"


def markers(name: str) -> tuple[str, str]:
    """The start and end marker lines of the README block ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_marked_block(text: str, block: str, name: str = README_BLOCK) -> str:
    """``text`` with everything between the start and end marker lines of block ``name``
    replaced by ``block``; the markers and the rest are kept. ValueError without
    exactly one pair of markers in that order."""
    first, last = markers(name)
    start, end = text.find(first), text.find(last)
    if text.count(first) != 1 or text.count(last) != 1 or end < start:
        raise ValueError(f"needs one {first} line and, after it, one {last} line")
    return f"{text[: start + len(first)]}\n{block.rstrip()}\n{text[end:]}"


def rendered(reports: list[dict], paths: list[Path]) -> str:
    """Saved ``--json`` reports (e.g. measured on a lent GPU) as one Markdown block."""
    names = " ".join(str(p) for p in paths)
    lines = [f"Rendered from the saved reports by `python scripts/bench.py --from-json {names}`."]
    return "\n".join(lines) + "\n\n" + "\n".join(markdown(r) for r in reports)


# ----------------------------------------------------------------------------- main


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=_int_list, help="longest sides, px (default 128,256,512)")
    ap.add_argument("--batch", type=_int_list, help="batch sizes (default 1,8)")
    ap.add_argument("--optimizers", type=_str_list, help="adam,lbfgs (default both)")
    ap.add_argument(
        "--frameworks", type=_str_list, default=["jax", "torch"], help="jax,torch (default both)"
    )
    ap.add_argument(
        "--steps", type=int, default=10, help="optimiser steps per timed run (default 10)"
    )
    ap.add_argument(
        "--repeats", type=int, default=5, help="timed runs per framework, median taken (default 5)"
    )
    ap.add_argument("--preset", default="jcjohnson")
    ap.add_argument(
        "--compute-dtype",
        choices=sorted(AGREEMENT_RTOL),
        default="float32",
        help="dtype of jaxstyle's VGG19 convolutions (the torch reference stays float32)",
    )
    ap.add_argument(
        "--conv-algorithm",
        choices=("auto", "direct", "winograd"),
        default="auto",
        help="how jaxstyle's VGG19 blocks 3-5 convolve (default auto: as jaxstyle chooses)",
    )
    ap.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    ap.add_argument("--style", type=Path, default=DEFAULT_STYLE)
    ap.add_argument("--weights", type=Path, help="VGG19 weight set (default: jaxstyle's)")
    ap.add_argument(
        "--torch-threads",
        type=int,
        default=usable_cpus(),
        help="torch intra-op threads (default: all usable CPUs)",
    )
    ap.add_argument(
        "--no-probes",
        dest="probes",
        action="store_false",
        help="skip the compile-time and memory subprocesses",
    )
    ap.add_argument("--quick", action="store_true", help="defaults 128 px, batch 1, adam")
    ap.add_argument("--json", type=Path, help="write the full report as JSON")
    ap.add_argument("--markdown", type=Path, help="write the report as Markdown")
    ap.add_argument(
        "--write-readme",
        type=Path,
        metavar="README",
        help="replace the block between the markers <!-- NAME:start --> and "
        "<!-- NAME:end --> in README with the Markdown report",
    )
    ap.add_argument(
        "--readme-block",
        default=README_BLOCK,
        metavar="NAME",
        help=f"the marker name for --write-readme (default {README_BLOCK})",
    )
    ap.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        metavar="REPORT",
        help="render saved --json reports (for --markdown/--write-readme) instead of measuring",
    )
    ap.add_argument("--_probe", choices=["jax", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--_cache-dir", dest="_cache_dir", help=argparse.SUPPRESS)
    ap.add_argument("--_memory", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    quick = a.quick
    a.sizes = a.sizes or ([128] if quick else [128, 256, 512])
    a.batch = a.batch or ([1] if quick else [1, 8])
    a.optimizers = a.optimizers or (["adam"] if quick else ["adam", "lbfgs"])
    bad = set(a.frameworks) - {"jax", "torch"} or set(a.optimizers) - {"adam", "lbfgs"}
    if bad:
        ap.error(f"unknown choice(s): {', '.join(sorted(bad))}")
    if a.steps < 1 or a.repeats < 1 or min(a.batch) < 1 or min(a.sizes) < 16:
        ap.error("steps, repeats and batch must be >= 1 and sizes >= 16")
    if a.write_readme:  # fail before benchmarking, not after
        try:
            replace_marked_block(a.write_readme.read_text(), "", a.readme_block)
        except (OSError, ValueError) as err:
            ap.error(f"--write-readme: {err}")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    if a._probe:
        probe_main(a)
        return
    if a.from_json:
        try:
            reports = [json.loads(p.read_text()) for p in a.from_json]
        except (OSError, ValueError) as err:
            sys.exit(f"--from-json: {err}")
        write_outputs(a, rendered(reports, a.from_json))
        return
    import jax

    from jaxstyle.compiler import compiler_options
    from jaxstyle.vgg import choose_conv_algorithm
    from jaxstyle.weights import load_vgg19

    frameworks = a.frameworks
    backend = a.backend = jax.default_backend()
    machine = machine_info(frameworks)
    if backend == "gpu":
        found = gpu_peak_gflops(machine["device"], a.compute_dtype)
        if found is None:
            sys.exit(f"no dense peak known for {machine['device']}; add it to GPU_PEAKS_TFLOPS")
        peak, peak_source = found
    else:
        peak = measure_matmul_gflops()
        peak_source = "numpy float32 2048x2048 matmul, median of 7, best of before/after"
    print(
        f"{machine['cpu']} | jax {backend} {machine['device']} | reference rate "
        f"{peak:.1f} GFLOP/s ({peak_source})",
        flush=True,
    )
    settings = {
        "preset": a.preset,
        "compute_dtype": a.compute_dtype,
        "conv_algorithm": choose_conv_algorithm(a.conv_algorithm, a.compute_dtype),
        "xla_options": compiler_options(),
        "content": a.content.name,
        "style": a.style.name,
        "steps": a.steps,
        "repeats": a.repeats,
        "sizes": a.sizes,
        "batch": a.batch,
        "optimizers": a.optimizers,
        "frameworks": frameworks,
    }
    if "torch" in frameworks:
        settings["torch_device"] = torch_device(backend)
        settings["torch_threads"] = a.torch_threads
    params = load_vgg19(a.weights)
    rows: list[dict] = []
    start = time.perf_counter()

    def report_of(complete: bool) -> dict:
        return {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(["python", "scripts/bench.py", *(argv or sys.argv[1:])]),
            "machine": machine,
            "settings": settings,
            "peak_gflops": peak,
            "peak_source": peak_source,
            "results": rows,
            "ratios": ratio_lines(rows),
            "total_seconds": time.perf_counter() - start,
            "complete": complete,
        }

    for size in a.sizes:
        for batch in a.batch:
            for optimizer in a.optimizers:
                config = Config(size, batch, optimizer)
                new = bench_config(config, params, frameworks, a, peak)
                rows += new
                print(text_table(new), flush=True)
                if a.json:  # as it goes: a run cut short keeps what it measured
                    a.json.write_text(json.dumps(report_of(complete=False), indent=1) + "\n")
    if backend != "gpu":  # a busy moment must not lower the reference: keep the better one
        peak = max(peak, measure_matmul_gflops())
        for row in rows:
            row["peak_fraction"] = row["gflops"] / peak
    report = report_of(complete=True)
    print()
    print("\n".join(header_lines(report)))
    print(text_table(rows))
    print("\n".join(report["ratios"]))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    write_outputs(a, markdown(report))


def write_outputs(a: argparse.Namespace, block: str) -> None:
    """Write the Markdown ``block`` to ``--markdown`` and into ``--write-readme``."""
    if a.markdown:
        a.markdown.write_text(block)
    if a.write_readme:
        text = replace_marked_block(a.write_readme.read_text(), block, a.readme_block)
        a.write_readme.write_text(text)
        print(f"wrote the table into {a.write_readme} ({a.readme_block} block)")


if __name__ == "__main__":
    main()
