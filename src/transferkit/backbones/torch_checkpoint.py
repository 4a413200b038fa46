"""A safe reader for PyTorch checkpoints: admits only ordered dicts and tensor storages, never runs pickled code.

Reads both the legacy (pre-1.6) stream format and the zip format into NumPy
arrays without importing PyTorch.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import TransferkitError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


@dataclass
class _StorageType:
    dtype: type


@dataclass
class _Storage:
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def materialise(self) -> np.ndarray:
        if self.storage.data is None:
            raise TransferkitError("Checkpoint is damaged: a tensor's data is missing.")
        base = self.storage.data
        itemsize = base.dtype.itemsize
        if not self.size:
            return base[self.offset].copy()
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if needed > len(base) or min(self.stride, default=1) < 0:
            raise TransferkitError("Checkpoint is damaged: a tensor points outside its storage.")
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.size,
                                               strides=[s * itemsize for s in self.stride])
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; anything else is refused."""

    def __init__(self, file, storages: dict, load_storage=None):
        super().__init__(file)
        self.storages = storages
        self.load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only tensors are allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid[:5]
        key = str(key)
        if key not in self.storages:
            storage = _Storage(stype.dtype, int(numel))
            if self.load_storage is not None:
                storage.data = self.load_storage(key, stype.dtype, int(numel))
            self.storages[key] = storage
        return self.storages[key]


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict file into NumPy arrays, safely (no code from the file runs).

    Args:
        path: a `.pth`/`.pt` file saved by `torch.save(model.state_dict(), path)`.

    Returns:
        name -> array (in PyTorch layout, e.g. OIHW for conv kernels).

    Raises:
        TransferkitError: when the file holds anything but tensors, or is damaged.
    """
    try:
        if zipfile.is_zipfile(path):
            state = _load_zip(path)
        else:
            state = _load_legacy(path)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, KeyError) as exc:
        raise TransferkitError(f"Cannot read the checkpoint {path}: {exc}") from None
    if not isinstance(state, dict):
        raise TransferkitError(f"{path} does not hold a state dict.")
    out = {}
    for name, value in state.items():
        if isinstance(value, _TensorRef):
            out[str(name)] = value.materialise()
        else:
            raise TransferkitError(f"{path}: entry {name!r} is not a tensor.")
    return out


def _load_legacy(path: str):
    with open(path, "rb") as f:
        magic = _RestrictedUnpickler(f, {}).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError("not a PyTorch checkpoint (bad magic number)")
        _RestrictedUnpickler(f, {}).load()  # protocol version
        sys_info = _RestrictedUnpickler(f, {}).load()
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian checkpoints are not supported")
        storages: dict[str, _Storage] = {}
        state = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f, {}).load()
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != storage.numel:
                raise ValueError(f"storage {key} has {numel} elements, expected {storage.numel}")
            nbytes = numel * np.dtype(storage.dtype).itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError("file is truncated")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return state


def _load_zip(path: str):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ValueError("no data.pkl in the archive")
        prefix = pkl[: -len("data.pkl")]

        def load_storage(key, dtype, numel):
            raw = zf.read(f"{prefix}data/{key}")
            arr = np.frombuffer(raw, dtype=dtype)
            if len(arr) < numel:
                raise ValueError(f"storage {key} is truncated")
            return arr[:numel]

        return _RestrictedUnpickler(io.BytesIO(zf.read(pkl)), {}, load_storage).load()
