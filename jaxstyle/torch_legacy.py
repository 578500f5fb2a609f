"""Read torch's legacy (pre-1.6, non-zip) ``torch.save`` files without torch.

The format is five pickles in a row (magic number, protocol version, system
info, the object, the list of storage keys) followed by each storage's raw
bytes, each prefixed by its element count as a little-endian int64. Tensors
inside the object are rebuilt by ``torch._utils._rebuild_tensor_v2`` from
"persistent ids" that name a storage.

Only the globals needed to rebuild plain tensor dicts are admitted; anything
else raises :class:`~jaxstyle.errors.JaxstyleError` before any code runs.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

from jaxstyle.errors import JaxstyleError

_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BoolStorage": np.bool_,
}


class _Storage:
    """A storage named in the pickle; its bytes are read after the object."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    """A tensor view onto a storage whose bytes have not been read yet."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self) -> np.ndarray:
        data = self.storage.data
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None, *_):
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
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
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
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return self._storages[key]


class _PlainUnpickler(pickle.Unpickler):
    """For the header pickles, which hold only numbers, strings and dicts."""

    def find_class(self, module: str, name: str) -> Any:
        raise JaxstyleError(f"refusing to load {module}.{name} from a weights file header")


def load_legacy(data: bytes) -> dict[str, np.ndarray]:
    """Decode a legacy ``torch.save`` of a (nested) dict of tensors.

    Args:
      data: the whole file's bytes.

    Returns:
      The saved dict with every tensor as a contiguous NumPy array.
    """
    f = io.BytesIO(data)
    try:
        if _PlainUnpickler(f).load() != _MAGIC:
            raise JaxstyleError("not a legacy torch.save file (bad magic number)")
        _PlainUnpickler(f).load()  # protocol version
        _PlainUnpickler(f).load()  # system info
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(f, storages).load()
        keys = _PlainUnpickler(f).load()
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if numel != storage.numel or len(raw) != nbytes:
                raise JaxstyleError("weights file is truncated or corrupt")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError) as err:
        raise JaxstyleError(f"weights file is truncated or corrupt ({err})") from None
    return _materialise(obj)


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    return obj
