"""The restricted unpickler behind :func:`skelact.data.io.safe_unpickle`.

A pickle is a program for a small stack machine, and CPython's C unpickler runs parts of it that
no ``find_class`` hook sees: it hashes dict keys and set members (a tuple nested a million deep
used as a key overflows the C stack; a tuple shared ten ways nine levels deep through the memo
costs 10^9 hash steps), sizes its memo from the indices the file gives, and reads as many bytes
as a length field claims. So loading runs in two passes over the file:

1. :func:`skelact.data.pickle_scan.scan` walks the opcode stream once and refuses anything an
   annotation file does not need (globals outside :data:`_GLOBALS`, calls of what is not meant
   to be called, tuples as dict keys, deep nesting, memo indices and lengths beyond the file).
2. The C unpickler then loads the checked stream, with :meth:`_Unpickler.find_class` handing out
   the guarded stand-ins below, which check their arguments before anything is allocated.

Whatever the stream shares through its memo stays shared (the C unpickler copies nothing), and
everything that walks the result afterwards (:func:`finish`, the validation in
:mod:`skelact.data.io`) visits each object once. The stand-ins that copy or walk an argument
(sets, bytes, latin-1 text, array data, scalars) charge it to a budget of a few times the file's
size, since the memo lets a few bytes pass one large argument to thousands of calls. So work and
memory stay proportional to the file's size.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import mmap
import pickle
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any, BinaryIO

import numpy as np

from skelact.data.pickle_scan import K_BUILDABLE, K_DICT, K_LEAF, K_OBJ, K_SET, PickleRefused, refuse, scan
from skelact.errors import one_line, short_repr

__all__ = ["PickleRefused", "restricted_load"]

# Bytes the guarded callables may copy or walk in one load: this many times the file's size plus
# _COPY_SLACK. A real file passes each byte string to one call (twice for protocol 0-2 arrays:
# text -> bytes -> array); the memo lets a few bytes hand one large argument to many calls.
_COPY_GROWTH = 4
_COPY_SLACK = 64 * 2**20
_copy_budget: ContextVar[list[int] | None] = ContextVar("skelact_copy_budget", default=None)


def _charge(nbytes: int) -> None:
    """Count ``nbytes`` against the current load's copy budget (see :data:`_COPY_GROWTH`)."""
    left = _copy_budget.get()
    if left is not None:
        left[0] -= nbytes
        if left[0] < 0:
            raise PickleRefused(f"not a valid annotation pickle: it asks for more than {_COPY_GROWTH}x its size in "
                                "copies (one large value passed to many calls through the memo)")


# ------------------------------------------------------------------------------ guarded globals

# Plain dtype kinds an annotation file may hold: bool, integers, floats, complex, bytes, str.
# Object, void (structured) and datetime dtypes are refused.
_SAFE_DTYPE_KINDS = "biufcSU"
# Values that are safe to hash (no recursion, no hidden cost): what dict keys and set members may be.
_HASH_SAFE = (str, bytes, int, float, bool, complex, type(None), np.generic)


class _DtypeSpec:
    """Stands in for ``numpy.dtype(...)`` while unpickling.

    numpy's own ``dtype.__setstate__`` trusts the pickled fields and flags: a crafted state can
    declare an object field without the flags that make numpy treat it as references, and an
    array of that dtype then reads attacker bytes as ``PyObject`` pointers (memory corruption,
    i.e. code execution). So the pickled arguments and state are only recorded here, and
    :meth:`resolve` builds a fresh dtype from the type code and byte order alone.
    """

    __slots__ = ("args", "state", "_dtype")

    def __init__(self, *args: Any) -> None:
        self.args, self.state, self._dtype = args, None, None

    def __setstate__(self, state: Any) -> None:
        self.state, self._dtype = state, None

    def resolve(self) -> np.dtype:
        if self._dtype is None:
            self._dtype = _plain_dtype(self.args, self.state)
        return self._dtype


def _plain_dtype(args: tuple, state: Any) -> np.dtype:
    code = args[0] if args else None
    if not isinstance(code, str):
        raise refuse(f"a numpy dtype given as {type(code).__name__}")
    _charge(len(code))
    try:
        dt = np.dtype(code)
    except (TypeError, ValueError):
        raise refuse(f"numpy dtype {short_repr(code, 40)}") from None
    if dt.kind not in _SAFE_DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise refuse(f"numpy dtype {dt}")
    if state is not None:
        # numpy writes (version, byteorder, subdescr, names, fields, elsize, alignment, flags[, metadata]).
        if not isinstance(state, tuple) or len(state) not in (8, 9) or any(x is not None for x in state[2:5]):
            raise refuse(f"numpy dtype {dt} with a structured or unknown state")
        order, elsize = state[1], state[5]
        if order not in ("<", ">", "|", "=") or isinstance(elsize, bool) or not isinstance(elsize, int):
            raise refuse(f"numpy dtype {dt} with a malformed state")
        if dt.itemsize == 0 and elsize > 0:  # an unsized 'S' / 'U' code: the state holds the size
            try:
                dt = np.dtype((dt.type, elsize // (4 if dt.kind == "U" else 1)))
            except (TypeError, ValueError, OverflowError):
                raise refuse(f"numpy dtype {dt} of size {short_repr(elsize)}") from None
        if order in "<>" and dt.byteorder != "|":
            dt = dt.newbyteorder(order)
    if dt.itemsize == 0:  # 'U0': any number of elements from no data at all
        raise refuse(f"numpy dtype {dt} of size 0")
    return dt


def _as_dtype(x: Any) -> np.dtype:
    if isinstance(x, _DtypeSpec):
        return x.resolve()
    raise refuse(f"a numpy array with dtype given as {type(x).__name__}")


class _GuardedArray(np.ndarray):
    """What ``_reconstruct`` returns while unpickling: an ndarray whose ``__setstate__`` builds
    the array from a :func:`_plain_dtype` instead of the pickled dtype object. Turned into a
    plain ``ndarray`` view once loading is done (:func:`finish`)."""

    def __setstate__(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, rawdata), or the same without the version.
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise refuse("a numpy array with a malformed state")
        if not isinstance(state[-1], (bytes, bytearray)):
            raise refuse("a numpy array whose data is not raw bytes (object arrays are not allowed)")
        _charge(len(state[-1]))
        super().__setstate__((*state[:-3], _as_dtype(state[-3]), *state[-2:]))


def _reconstruct(subtype: Any, shape: Any = None, dtype: Any = None) -> _GuardedArray:
    # The shape and dtype given here are placeholders numpy overwrites in __setstate__.
    if subtype is not np.ndarray:
        raise refuse("an array of a type other than numpy.ndarray")
    return np.ndarray.__new__(_GuardedArray, (0,), np.uint8)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C", axis_order: Any = None) -> np.ndarray:
    # numpy's own _frombuffer (protocol 5), with the dtype rebuilt by _plain_dtype.
    if not isinstance(buf, (bytes, bytearray)):
        raise refuse("a numpy array buffer that is not raw bytes")
    array = np.frombuffer(buf, dtype=_as_dtype(dtype))
    if order == "K" and axis_order is not None:  # a dense array with permuted axes
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _scalar(dtype: Any, data: Any = None) -> Any:
    # numpy.float32(1.5) pickles as scalar(dtype('float32'), b'\x00\x00\xc0?'): the bytes of one value.
    dt = _as_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise refuse(f"a numpy scalar whose data is not the {dt.itemsize} bytes of one {dt}")
    _charge(len(data))
    return np.frombuffer(data, dtype=dt, count=1)[0]


def _bytes_of(kind: type) -> Any:
    # Pickles call bytes() / bytearray() with nothing or with bytes. bytes(n) allocates n bytes,
    # whatever kind of integer n is (a pickled numpy.int64 too), so only raw bytes are passed on.
    def make(*args: Any) -> Any:
        if not args:
            return kind()
        if len(args) == 1 and type(args[0]) in (bytes, bytearray):
            _charge(len(args[0]))
            return kind(args[0])
        what = "a size" if hasattr(args[0], "__index__") else f"a {type(args[0]).__name__}"
        raise refuse(f"{kind.__name__}() of {what}")

    return make


def _latin1(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Protocol 0-2 pickles store bytes as latin-1 text: ``_codecs.encode(text, 'latin1')``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1", "iso8859-1"):
        raise refuse(f"codecs.encode with encoding {short_repr(encoding, 20)}")
    _charge(len(text))
    return codecs.encode(text, "latin1")


def _set_of(kind: type) -> Any:
    # Protocol 0-3 pickles write a set as set([members]); members are hashed, so only plain values.
    def make(*args: Any) -> Any:
        if not args:
            return kind()
        items = args[0]
        if len(args) != 1 or type(items) not in (list, tuple):
            raise refuse(f"a {kind.__name__} of anything but plain values")
        _charge(64 * len(items))  # about what a set takes per member
        if not all(isinstance(x, _HASH_SAFE) for x in items):
            raise refuse(f"a {kind.__name__} of anything but plain values")
        return kind(items)

    return make


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise refuse("complex() of anything but two numbers")
    return complex(real, imag)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:  # OrderedDict pickles as OrderedDict() followed by SETITEMS
        raise refuse("OrderedDict() with arguments")
    return OrderedDict()


# (module, name) -> (what find_class returns, the kind a call of it returns or None: not callable;
# the K_ kinds of skelact.data.pickle_scan).
# Everything else is refused before it is looked up, so a payload's callable is never imported.
_GLOBALS: dict[tuple[str, str], tuple[Any, int | None]] = {
    ("builtins", "complex"): (_complex, K_LEAF),
    ("builtins", "set"): (_set_of(set), K_SET),
    ("builtins", "frozenset"): (_set_of(frozenset), K_SET),
    ("builtins", "bytes"): (_bytes_of(bytes), K_LEAF),
    ("builtins", "bytearray"): (_bytes_of(bytearray), K_LEAF),
    ("collections", "OrderedDict"): (_ordered_dict, K_DICT),
    ("_codecs", "encode"): (_latin1, K_LEAF),
    ("codecs", "encode"): (_latin1, K_LEAF),
    ("numpy", "dtype"): (_DtypeSpec, K_BUILDABLE),
    ("numpy", "ndarray"): (np.ndarray, None),  # only as _reconstruct's first argument
}
for _name in ("dict", "list", "tuple", "str", "int", "float", "bool"):  # types as values, never called
    _GLOBALS[("builtins", _name)] = (getattr(builtins, _name), None)
# numpy scalar types appear as values (dtype classes) in old pickles; calling one would build an array.
for _name in ("bool", "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "str_", "bytes_"):
    _GLOBALS[("numpy", _name)] = (getattr(np, _name), None)
for _mod in ("numpy.core", "numpy._core"):  # NumPy 1.x and 2.x module names
    _GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = (_reconstruct, K_BUILDABLE)
    _GLOBALS[(f"{_mod}.multiarray", "scalar")] = (_scalar, K_LEAF)  # numpy scalars hash safely
    _GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = (_frombuffer, K_OBJ)
_GLOBAL_LIST = list(_GLOBALS)  # a slot of kind GLOBAL holds its index here
_CALL_RESULT = [_GLOBALS[key][1] for key in _GLOBAL_LIST]
_GLOBAL_NAMES = [f"{module}.{name}" for module, name in _GLOBAL_LIST]
_GLOBAL_INDEX = {key: i for i, key in enumerate(_GLOBAL_LIST)}
# Stand-ins that replace a real object; a stand-in used as a plain value is swapped back by finish().
_REAL = {id(_GLOBALS[("builtins", n)][0]): getattr(builtins, n)
         for n in ("complex", "set", "frozenset", "bytes", "bytearray")}
_REAL[id(_ordered_dict)] = OrderedDict


def _resolve(module: str, name: str) -> int:
    """Index into :data:`_GLOBAL_LIST` of an allowed global; protocol 0-2 spell builtins the Python 2 way."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    index = _GLOBAL_INDEX.get((module, name))
    if index is None:
        raise refuse(f"'{short_repr(module, 60)[1:-1]}.{short_repr(name, 60)[1:-1]}'")
    return index


# ------------------------------------------------------------------------------------- loading


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _GLOBALS[_GLOBAL_LIST[_resolve(module, name)]][0]

    def persistent_load(self, pid: Any) -> Any:
        raise refuse("persistent ids")


def finish(obj: Any) -> Any:
    """Replace the loading stand-ins (:class:`_GuardedArray`, :class:`_DtypeSpec`, guarded
    callables used as values) inside ``obj`` by plain numpy arrays, dtypes and builtins; lists and
    dicts are updated in place. Each object is visited once, however often it is shared."""
    memo: dict[int, Any] = {}  # id -> replacement
    originals: list[Any] = []  # keeps every memoised object alive, so its id is not reused
    leaves = frozenset((str, bytes, int, float, bool, type(None)))

    def fix(x: Any) -> Any:
        if type(x) in leaves:
            return x
        key = id(x)
        if key in memo:  # shared and self-referencing objects stay shared
            return memo[key]
        if isinstance(x, _GuardedArray):
            new: Any = x.view(np.ndarray)
        elif isinstance(x, _DtypeSpec):
            new = x.resolve()
        else:
            new = _REAL.get(key, x)
        memo[key] = new
        originals.append(x)
        if isinstance(x, dict):
            for k, v in x.items():
                if type(v) not in leaves:
                    fixed = fix(v)
                    if fixed is not v:
                        x[k] = fixed
        elif isinstance(x, list):
            for i, v in enumerate(x):
                if type(v) not in leaves:
                    fixed = fix(v)
                    if fixed is not v:
                        x[i] = fixed
        elif isinstance(x, tuple):
            items = [v if type(v) in leaves else fix(v) for v in x]
            if any(a is not b for a, b in zip(items, x, strict=True)):
                memo[key] = new = tuple(items)
        return new

    return fix(obj)


def restricted_load(f: BinaryIO) -> Any:
    """Scan and load the pickle in the regular file ``f`` (see the module docstring).

    Raises:
        PickleRefused: The stream is refused; the message says why (without the file name).
        RecursionError: The result nests deeper than Python can walk (shared through the memo).
    """
    try:
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except ValueError:  # mmap refuses an empty file
        raise PickleRefused("empty file, expected an annotation pickle") from None
    with view:
        scan(view, _resolve, _CALL_RESULT, _GLOBAL_NAMES)
        size = len(view)
    f.seek(0)
    token = _copy_budget.set([_COPY_GROWTH * size + _COPY_SLACK])
    try:
        return finish(_Unpickler(f).load())
    except (PickleRefused, RecursionError, MemoryError):
        raise
    except Exception as e:  # a stream the scan let through can still fail (a bad dtype, a wrong size)
        raise PickleRefused(f"not a valid annotation pickle ({type(e).__name__}: {one_line(e)})") from None
    finally:
        _copy_budget.reset(token)
