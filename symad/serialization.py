"""``symad.save`` / ``symad.load``: tensors, parameters, state dicts and containers of them.

The file is a zip archive (like PyTorch's): ``symad_archive/data.pkl`` pickles the object with
each tensor replaced by a reference, and each tensor's values are a ``.npy`` entry, so dtype,
shape and values round-trip exactly. ``requires_grad`` is kept, and ``nn.Parameter`` stays a
Parameter, as in PyTorch; a tensor saved twice (or a dict holding the same tensor twice) loads
as one tensor. Loading is restricted by default (``weights_only=True``, PyTorch 2.6's default):
only containers, numbers, strings, tensors, dtypes and devices are rebuilt.

>>> import io, symad
>>> buf = io.BytesIO()
>>> symad.save({"w": symad.tensor([1.5, 2.0], dtype=symad.float64)}, buf)
>>> _ = buf.seek(0)
>>> symad.load(buf)
{'w': tensor([1.5000, 2.0000], dtype=symad.float64)}
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from typing import Any, BinaryIO

import numpy as np

from . import _dtype as D
from ._device import check_device, device

_ROOT = "symad_archive"
_VERSION = b"symad-archive-1\n"
_PROTOCOL = 2



def _tensor_cls():
    return D._tensor_cls()


class _Pickler(pickle.Pickler):
    def __init__(self, file, arrays: dict):
        super().__init__(file, protocol=_PROTOCOL)
        self._arrays = arrays
        self._keys: dict[int, str] = {}
        self._array_keys: dict[int, str] = {}
        self._keep: list = []  # keeps saved tensors alive so their ids stay unique

    def persistent_id(self, obj):
        Tensor = _tensor_cls()
        if not isinstance(obj, Tensor):
            return None
        from .nn.parameter import Parameter
        if obj._data.dtype == object:
            raise TypeError("symad.save: cannot save a symbolic (traced) tensor; save concrete "
                            "values")
        key = self._keys.get(id(obj))
        if key is None:
            key = str(len(self._keys))
            self._keys[id(obj)] = key
            self._keep.append(obj)
        # tensors sharing one array (a parameter and its detached state_dict entry) share it
        # after loading too
        akey = self._array_keys.get(id(obj._data))
        if akey is None:
            akey = str(len(self._array_keys))
            self._array_keys[id(obj._data)] = akey
            self._arrays[akey] = obj._data
        kind = "parameter" if isinstance(obj, Parameter) else "tensor"
        return ("tensor", key, akey, kind, obj._dtype.name, bool(obj._requires_grad))


# what weights_only loading may rebuild: containers and symad's own value types
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("symad._dtype", "_by_name"): D._by_name,
    ("symad._device", "device"): device,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, zf: zipfile.ZipFile, weights_only: bool):
        super().__init__(file)
        self._zf = zf
        self._weights_only = weights_only
        self._loaded: dict[str, Any] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if not self._weights_only:
            return super().find_class(module, name)
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"Weights only load failed: the file refers to {module}.{name}, which "
                f"weights_only loading does not rebuild (it rebuilds tensors, containers, "
                f"numbers and strings). If you trust the file, call symad.load(..., "
                f"weights_only=False).") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "tensor"):
            raise pickle.UnpicklingError(f"symad.load: unknown reference {pid!r} in the archive")
        _, key, akey, kind, dtype_name, requires_grad = pid
        hit = self._loaded.get(key)
        if hit is not None:
            return hit
        arr = self._arrays.get(akey)
        if arr is None:
            try:
                raw = self._zf.read(f"{_ROOT}/data/{akey}.npy")
            except KeyError:
                raise RuntimeError(f"symad.load: the archive is missing tensor data {akey!r} "
                                   f"(the file is truncated or corrupt)") from None
            arr = self._arrays[akey] = np.load(io.BytesIO(raw), allow_pickle=False)
        dt = D.as_dtype(dtype_name)
        if arr.dtype != dt.np:
            raise RuntimeError(f"symad.load: tensor {akey!r} is stored as {arr.dtype} but "
                               f"recorded as {dt} (the file is corrupt)")
        Tensor = _tensor_cls()
        t = Tensor._wrap(arr, dt)
        if kind == "parameter":
            from .nn.parameter import Parameter
            t = Parameter(t, requires_grad)
        elif requires_grad:
            t.requires_grad = True
        self._loaded[key] = t
        return t


def save(obj: Any, f: str | os.PathLike | BinaryIO, pickle_module: Any = None, pickle_protocol: int = _PROTOCOL,
         _use_new_zipfile_serialization: bool = True) -> None:
    """Write ``obj`` (tensors, ``state_dict()`` results, optimizer/scheduler state dicts, and
    lists/dicts/tuples of them) to a path or a binary file object."""
    arrays: dict[str, np.ndarray] = {}
    body = io.BytesIO()
    _Pickler(body, arrays).dump(obj)
    opened = isinstance(f, (str, os.PathLike))
    fh = open(f, "wb") if opened else f
    try:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(f"{_ROOT}/version", _VERSION)
            zf.writestr(f"{_ROOT}/data.pkl", body.getvalue())
            for key, arr in arrays.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                zf.writestr(f"{_ROOT}/data/{key}.npy", buf.getvalue())
    finally:
        if opened:
            fh.close()


def _describe(f) -> str:
    return repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else "the file object"


def load(f: str | os.PathLike | BinaryIO, map_location: Any = None, pickle_module: Any = None, *,
         weights_only: bool | None = None, mmap: bool | None = None, **pickle_load_args: Any):
    """Read an object written by :func:`save`. ``map_location`` may name the CPU (or be None);
    ``weights_only=False`` also rebuilds arbitrary pickled classes (only for trusted files)."""
    if map_location is not None and not callable(map_location) and \
            not isinstance(map_location, dict):
        check_device(map_location, "loading tensors onto")
    opened = isinstance(f, (str, os.PathLike))
    fh = open(f, "rb") if opened else f
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise RuntimeError(f"symad.load: {_describe(f)} is not a symad checkpoint (not a zip "
                               f"archive; it may be corrupt, or written by another program). "
                               f"Files are written with symad.save.") from None
        with zf:
            names = set(zf.namelist())
            if f"{_ROOT}/data.pkl" not in names:
                foreign = sorted(n for n in names if n.endswith("/data.pkl"))
                hint = (" It looks like a PyTorch checkpoint: symad cannot read PyTorch's storage "
                        "format; convert the tensors to numpy arrays in PyTorch and build symad "
                        "tensors from them." if foreign else "")
                raise RuntimeError(f"symad.load: {_describe(f)} is not a symad checkpoint (no "
                                   f"{_ROOT}/data.pkl entry).{hint}")
            version = zf.read(f"{_ROOT}/version") if f"{_ROOT}/version" in names else b""
            if version != _VERSION:
                raise RuntimeError(f"symad.load: {_describe(f)} has archive version "
                                   f"{version.strip()!r}; this symad reads "
                                   f"{_VERSION.strip()!r}")
            try:
                body = io.BytesIO(zf.read(f"{_ROOT}/data.pkl"))
                return _Unpickler(body, zf, weights_only is not False).load()
            except (EOFError, pickle.UnpicklingError, ValueError, zipfile.BadZipFile) as e:
                if isinstance(e, pickle.UnpicklingError) and "Weights only" in str(e):
                    raise
                raise RuntimeError(f"symad.load: {_describe(f)} is corrupt ({type(e).__name__}: "
                                   f"{e})") from e
    finally:
        if opened:
            fh.close()
