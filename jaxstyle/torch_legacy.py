"""Read ``torch.save`` files of tensor dicts without torch: zip (torch >= 1.6) and legacy.

Both formats pickle the object with tensors rebuilt by
``torch._utils._rebuild_tensor_v2`` (``_rebuild_tensor`` in files from 2017)
from "persistent ids" ``('storage', torch.FloatStorage, key, location, numel,
...)`` that name a storage; they differ in where the storages' bytes live:

* zip: ``<prefix>/data.pkl`` is the object; ``<prefix>/data/<key>`` holds each
  storage's raw bytes, in the order named by ``<prefix>/byteorder``
  (little-endian when absent).
* legacy: five pickles in a row (magic number, protocol version, system info,
  the object, the list of storage keys) followed by each storage's raw
  little-endian bytes, each prefixed by its element count as an int64.

Only the globals needed to rebuild plain tensor dicts are admitted; anything
else raises :class:`~jaxstyle.errors.JaxstyleError` before any code runs.
Tensor views are bounds-checked against their storage.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Literal

import ml_dtypes
import numpy as np
from numpy.typing import DTypeLike

from jaxstyle.errors import JaxstyleError

_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b"PK\x03\x04"
_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BoolStorage": np.bool_,
}
_CORRUPT = (
    pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, KeyError, IndexError,
    TypeError, ValueError, AttributeError, OverflowError, RecursionError,
)  # fmt: skip
"""What malformed input makes the decoders below raise."""


class _Storage:
    """A storage named in the pickle; its bytes are attached after unpickling."""

    def __init__(self, dtype: DTypeLike, numel: int):
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.data: np.ndarray | None = None

    def attach(self, raw: bytes, byteorder: Literal["<", ">"] = "<") -> None:
        """Use ``raw`` (exactly ``numel`` elements) as this storage's contents."""
        dtype = self.dtype.newbyteorder(byteorder)
        if len(raw) != self.numel * dtype.itemsize:
            raise JaxstyleError("weights file is truncated or corrupt (storage size mismatch)")
        self.data = np.frombuffer(raw, dtype=dtype)


class _LazyTensor:
    """A tensor view onto a storage whose bytes may not have been read yet."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self) -> np.ndarray:
        """The view as a contiguous, native-endian array, bounds-checked."""
        data, size, stride, offset = self.storage.data, self.size, self.stride, self.offset
        if data is None:
            raise JaxstyleError("weights file lacks the bytes of a storage it refers to")
        dims = (offset, *size, *stride)
        if len(size) != len(stride) or not all(type(d) is int and d >= 0 for d in dims):
            raise JaxstyleError("weights file has a malformed tensor (bad size or stride)")
        native = data.dtype.newbyteorder("=")
        if 0 in size:
            return np.zeros(size, native)
        if math.prod(size) > data.size:
            raise JaxstyleError("weights file has a tensor larger than its storage (unsupported)")
        if offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= data.size:
            raise JaxstyleError("weights file has a tensor reaching past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            data[offset:], shape=size, strides=tuple(s * data.itemsize for s in stride)
        )
        return np.array(view, dtype=native, order="C")


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """Stands in for ``torch._utils._rebuild_tensor`` and ``_rebuild_tensor_v2``."""
    if not isinstance(storage, _Storage):
        raise JaxstyleError("weights file has a malformed tensor (no storage)")
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


class _StorageType:
    def __init__(self, name: str):
        self.dtype = _STORAGE_DTYPES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only OrderedDict, tensor rebuilding and storage type globals."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise JaxstyleError(
            f"refusing to load {module}.{name} from a weights file: only plain "
            "tensor dicts are accepted (no code is run from weight files)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise JaxstyleError(f"unsupported storage reference in weights file: {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str)):
            raise JaxstyleError(f"malformed storage reference in weights file: {pid!r:.80}")
        if len(pid) > 5 and pid[5] is not None:
            raise JaxstyleError("weights file uses storage views, which are not supported")
        numel = int(numel)
        storage = self._storages.setdefault(key, _Storage(storage_type.dtype, numel))
        if storage.dtype != storage_type.dtype or storage.numel != numel:
            raise JaxstyleError(f"weights file names storage {key!r} with two different types")
        return storage


class _PlainUnpickler(pickle.Unpickler):
    """For the header pickles, which hold only numbers, strings and dicts."""

    def find_class(self, module: str, name: str) -> Any:
        raise JaxstyleError(f"refusing to load {module}.{name} from a weights file header")


def load_torch_file(data: bytes) -> Any:
    """Decode a ``torch.save`` file (zip or legacy) of a (nested) dict of tensors.

    Args:
      data: the whole file's bytes.

    Returns:
      The saved object with every tensor as a contiguous, native-endian NumPy
      array (dicts, OrderedDicts included, become plain dicts).
    """
    if data[:4] == _ZIP_MAGIC:
        return _decode(data, _read_zip)
    return load_legacy(data)


def load_legacy(data: bytes) -> Any:
    """Decode a legacy (pre-1.6, non-zip) ``torch.save`` file; see :func:`load_torch_file`."""
    return _decode(data, _read_legacy)


def _decode(data: bytes, read) -> Any:
    """``read(data, storages)`` unpickles and fills ``storages``; then materialise."""
    storages: dict[str, _Storage] = {}
    try:
        obj = read(data, storages)
        return _materialise(obj)
    except _CORRUPT as err:
        raise JaxstyleError(f"weights file is truncated or corrupt ({err})") from None


def _read_legacy(data: bytes, storages: dict[str, _Storage]) -> Any:
    f = io.BytesIO(data)
    if _PlainUnpickler(f).load() != _MAGIC:
        raise JaxstyleError(
            "not a torch.save file (neither a zip archive nor a legacy magic number)"
        )
    _PlainUnpickler(f).load()  # protocol version
    _PlainUnpickler(f).load()  # system info
    obj = _RestrictedUnpickler(f, storages).load()
    for key in _PlainUnpickler(f).load():
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != storages[key].numel:
            raise JaxstyleError("weights file is truncated or corrupt (storage size mismatch)")
        storages[key].attach(f.read(numel * storages[key].dtype.itemsize))
    return obj


def _read_zip(data: bytes, storages: dict[str, _Storage]) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise JaxstyleError("zip archive is not a torch.save file (no single <name>/data.pkl)")
        prefix = pickles[0].removesuffix("data.pkl")
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = zf.read(f"{prefix}byteorder").decode("ascii").strip()
        if byteorder not in ("little", "big"):
            raise JaxstyleError(f"torch.save file has an unknown byte order {byteorder!r:.20}")
        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pickles[0])), storages).load()
        for key, storage in storages.items():
            storage.attach(zf.read(f"{prefix}data/{key}"), "<" if byteorder == "little" else ">")
    return obj


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map(_materialise, obj))
    return obj
