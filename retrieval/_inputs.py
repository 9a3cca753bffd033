"""retrieval's inputs: checked once, then read a block of rows at a time.

An input is a NumPy array, a path to a ``.npy`` file, or a Dask array. A path, or a
memory map of a whole ``.npy`` file (``np.load(path, mmap_mode="r")``), becomes an
``NpyFile``: each block task reads its own rows from the file (on a Dask worker: itself,
so only the path travels), so a file is never held in memory whole. Every message starts
with the public function's name, names the argument and says what was expected and what
came.
"""
import math
import mmap
import numbers
import os

import dask.array as da
import numpy as np

from alignedreid_dp import arguments

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(value):
    return f"{type(value).__module__}.{type(value).__qualname__}"


class NpyFile:
    """The rows of a ``.npy`` file, read on demand with plain file reads.

    Reads copy their rows straight into a new array and keep no mapping of the file, so
    the process holds only the rows it asked for (a memory map would also keep pages
    around each row it touched). Pickles as its path, header facts and all, which is what
    a Dask worker needs to read its blocks.
    """

    def __init__(self, path, shape, dtype, offset, fortran_order=False):
        self.path, self.shape, self.dtype = os.fspath(path), tuple(shape), np.dtype(dtype)
        self.offset, self.fortran_order = offset, fortran_order

    @classmethod
    def open(cls, path):
        """The file's shape, dtype and where its data start, from its header."""
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        return cls(path, array.shape, array.dtype, array.offset,
                   array.flags.f_contiguous and not array.flags.c_contiguous)

    def rows(self, start, stop):
        """A copy of rows ``start:stop``."""
        return self.take(np.arange(start, stop))

    def take(self, index):
        """A copy of the rows at ``index`` (sorted, distinct): one read per run of
        consecutive rows."""
        index = np.asarray(index, dtype=np.int64)
        if self.fortran_order:  # rows are not contiguous in the file: map it, copy, drop
            return np.array(np.load(self.path, mmap_mode="r")[index])
        out = np.empty((len(index),) + self.shape[1:], dtype=self.dtype)
        row_bytes = out[:1].nbytes
        runs = np.split(np.arange(len(index)), np.flatnonzero(np.diff(index) != 1) + 1)
        with open(self.path, "rb") as f:
            # shorter than its header says: truncated or rewritten since it was opened
            # (bytes after the data are allowed, as np.load allows them)
            if os.fstat(f.fileno()).st_size < self.offset + self.shape[0] * row_bytes:
                raise RuntimeError(f"{self.path} changed since it was opened "
                                   f"(expected {self.shape} {self.dtype})")
            for run in runs:
                if len(run):
                    f.seek(self.offset + int(index[run[0]]) * row_bytes)
                    f.readinto(memoryview(out[run[0]:run[-1] + 1]).cast("B"))
        return out

    def __repr__(self):
        return f"NpyFile({self.path!r}, shape={self.shape}, dtype={self.dtype})"


def _open_path(func, name, path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{func}: {name}: no such file: {path!r}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{func}: {name} must be a .npy file of numbers; {path!r} is not "
                         f"({error})") from None
    if not isinstance(array, np.ndarray):
        array.close()  # an NpzFile holds the file open
        raise ValueError(f"{func}: {name} must be a .npy file; {path!r} is an archive")
    return NpyFile.open(path)


def _whole_file(array):
    """``array`` maps a whole ``.npy`` file, as ``np.load(path, mmap_mode=...)`` gives, and
    shares its pages: reading the file gives the array. A copy-on-write map (mode ``"c"``)
    keeps its edits to itself, so it is taken as the array in memory that it is."""
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
            and array.filename and array.mode in ("r", "r+", "w+")):
        return False
    try:
        again = np.load(array.filename, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False  # a raw np.memmap of a file that is no .npy
    return (again.shape == array.shape and again.dtype == array.dtype
            and again.offset == array.offset and again.strides == array.strides)


def features(func, name, value, shape_doc, rank):
    """Check one feature input; return it as an ndarray, an ``NpyFile`` or a Dask array."""
    if isinstance(value, (str, os.PathLike)):
        value = _open_path(func, name, value)
    elif isinstance(value, np.ndarray) and _whole_file(value):
        value = NpyFile.open(value.filename)
    elif isinstance(value, np.ndarray) and type(value) not in (np.ndarray, np.memmap):
        raise TypeError(f"{func}: {name} must be a plain numpy.ndarray, not a subclass; got "
                        f"{describe(value)} (convert with np.asarray, after deciding what "
                        "any masked entries mean)")
    elif not isinstance(value, (np.ndarray, da.Array)):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray, a dask.array.Array or the "
                        f"path of a .npy file; got {describe(value)}")
    if np.dtype(value.dtype) not in FLOAT_DTYPES:
        raise TypeError(f"{func}: {name} must have dtype float32 or float64; got {value.dtype}")
    if len(value.shape) != rank:
        raise ValueError(f"{func}: {name} must have shape {shape_doc}; got {tuple(value.shape)}")
    if any(math.isnan(s) for s in value.shape):
        raise ValueError(f"{func}: {name} must have a known shape; got {tuple(value.shape)} "
                         "(call compute_chunk_sizes() on the Dask array first)")
    if 0 in value.shape:
        raise ValueError(f"{func}: {name} must not have an empty dimension; got shape "
                         f"{tuple(value.shape)}")
    return value


def same_dtype(func, name, value, other_name, other):
    if value.dtype != other.dtype:
        raise TypeError(f"{func}: {name} must have the same dtype as {other_name} "
                        f"({other.dtype}); got {value.dtype}")


def same_size(func, name, value, axis, other_name, other, what):
    """``value.shape[axis] == other.shape[axis]``; ``what`` names that size."""
    if value.shape[axis] != other.shape[axis]:
        raise ValueError(f"{func}: {name} must have {other.shape[axis]} {what} like "
                         f"{other_name} (axis {axis % len(value.shape)}); got shape "
                         f"{tuple(value.shape)}")


def positive_int(func, name, value, allow_none=False):
    """A positive int (``None`` too when ``allow_none``), as a Python int."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        expected = "a positive int or None" if allow_none else "a positive int"
        raise TypeError(f"{func}: {name} must be {expected}; got {describe(value)}")
    if value < 1:
        raise ValueError(f"{func}: {name} must be at least 1; got {value}")
    return int(value)


def chunk_size(func, value):
    """``None``, a positive int (query rows per block) or a pair of them (query rows and
    gallery rows per block); returns ``(rows or None, cols or None)``."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{func}: chunk_size must be an int or a pair of ints; got a "
                             f"tuple of {len(value)}")
        return tuple(positive_int(func, "chunk_size", v) for v in value)
    return positive_int(func, "chunk_size", value, allow_none=True), None


def flag(func, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be True or False; got {describe(value)}")
    return bool(value)


def weight(func, value):
    """A finite, non-negative real number."""
    weight = arguments.finite_float(func, "weight", value, "a finite real number, at least 0")
    if weight < 0:
        raise ValueError(f"{func}: weight must be a finite real number, at least 0; got {value}")
    return weight


def client(func, value):
    if value is None:
        return None
    from distributed import Client

    if not isinstance(value, Client):
        raise TypeError(f"{func}: client must be a distributed.Client or None; got "
                        f"{describe(value)}")
    return value
