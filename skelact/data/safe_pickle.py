"""The restricted unpickler behind :func:`skelact.data.io.safe_unpickle`.

A pickle is a program for a small stack machine, and CPython's C unpickler runs parts of it that
no ``find_class`` hook sees: it hashes dict keys and set members (a tuple nested a million deep
used as a key overflows the C stack; a tuple shared ten ways nine levels deep through the memo
costs 10^9 hash steps), sizes its memo from the indices the file gives, and reads as many bytes
as a length field claims. So loading runs in two passes over the file:

1. :func:`scan` walks the opcode stream once, in Python, tracking only what each stack and memo
   slot holds (a kind, a nesting depth, for strings where they lie in the file). It refuses
   anything an annotation file does not need: globals outside :data:`_GLOBALS`, calls of what is
   not meant to be called, ``BUILD`` on anything but a numpy array or dtype, containers or
   tuples as dict keys or set members, nesting deeper than :data:`MAX_DEPTH`, memo indices
   beyond the memo, and lengths beyond the end of the file. Large byte strings (the array data)
   are skipped by their length, so this costs a fraction of the load.
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
import pickletools
import struct
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from functools import reduce
from operator import or_
from typing import Any, BinaryIO

import numpy as np

from skelact.errors import SkelactError, short_repr

__all__ = ["MAX_DEPTH", "PickleRefused", "restricted_load", "scan"]

#: Deepest nesting of containers accepted (an annotation file needs about 6).
MAX_DEPTH = 32
# Bytes the guarded callables may copy or walk in one load: this many times the file's size plus
# _COPY_SLACK. A real file passes each byte string to one call (twice for protocol 0-2 arrays:
# text -> bytes -> array); the memo lets a few bytes hand one large argument to many calls.
_COPY_GROWTH = 4
_COPY_SLACK = 64 * 2**20
_copy_budget: ContextVar[list[int] | None] = ContextVar("skelact_copy_budget", default=None)


class PickleRefused(SkelactError, ValueError):
    """The stream is malformed or holds something other than plain data (the message says what)."""


def _charge(nbytes: int) -> None:
    """Count ``nbytes`` against the current load's copy budget (see :data:`_COPY_GROWTH`)."""
    left = _copy_budget.get()
    if left is not None:
        left[0] -= nbytes
        if left[0] < 0:
            raise PickleRefused(f"not a valid annotation pickle: it asks for more than {_COPY_GROWTH}x its size in "
                                "copies (one large value passed to many calls through the memo)")


def _refuse(what: str) -> PickleRefused:
    return PickleRefused(f"refused to unpickle {what}: only containers, strings, numbers and plain "
                         "numeric numpy arrays are allowed in an annotation file")


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
        raise _refuse(f"a numpy dtype given as {type(code).__name__}")
    _charge(len(code))
    try:
        dt = np.dtype(code)
    except (TypeError, ValueError):
        raise _refuse(f"numpy dtype {short_repr(code, 40)}") from None
    if dt.kind not in _SAFE_DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise _refuse(f"numpy dtype {dt}")
    if state is not None:
        # numpy writes (version, byteorder, subdescr, names, fields, elsize, alignment, flags[, metadata]).
        if not isinstance(state, tuple) or len(state) not in (8, 9) or any(x is not None for x in state[2:5]):
            raise _refuse(f"numpy dtype {dt} with a structured or unknown state")
        order, elsize = state[1], state[5]
        if order not in ("<", ">", "|", "=") or isinstance(elsize, bool) or not isinstance(elsize, int):
            raise _refuse(f"numpy dtype {dt} with a malformed state")
        if dt.itemsize == 0 and elsize > 0:  # an unsized 'S' / 'U' code: the state holds the size
            try:
                dt = np.dtype((dt.type, elsize // (4 if dt.kind == "U" else 1)))
            except (TypeError, ValueError, OverflowError):
                raise _refuse(f"numpy dtype {dt} of size {short_repr(elsize)}") from None
        if order in "<>" and dt.byteorder != "|":
            dt = dt.newbyteorder(order)
    if dt.itemsize == 0:  # 'U0': any number of elements from no data at all
        raise _refuse(f"numpy dtype {dt} of size 0")
    return dt


def _as_dtype(x: Any) -> np.dtype:
    if isinstance(x, _DtypeSpec):
        return x.resolve()
    raise _refuse(f"a numpy array with dtype given as {type(x).__name__}")


class _GuardedArray(np.ndarray):
    """What ``_reconstruct`` returns while unpickling: an ndarray whose ``__setstate__`` builds
    the array from a :func:`_plain_dtype` instead of the pickled dtype object. Turned into a
    plain ``ndarray`` view once loading is done (:func:`finish`)."""

    def __setstate__(self, state: Any) -> None:
        # (version, shape, dtype, is_fortran, rawdata), or the same without the version.
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _refuse("a numpy array with a malformed state")
        if not isinstance(state[-1], (bytes, bytearray)):
            raise _refuse("a numpy array whose data is not raw bytes (object arrays are not allowed)")
        _charge(len(state[-1]))
        super().__setstate__((*state[:-3], _as_dtype(state[-3]), *state[-2:]))


def _reconstruct(subtype: Any, shape: Any = None, dtype: Any = None) -> _GuardedArray:
    # The shape and dtype given here are placeholders numpy overwrites in __setstate__.
    if subtype is not np.ndarray:
        raise _refuse("an array of a type other than numpy.ndarray")
    return np.ndarray.__new__(_GuardedArray, (0,), np.uint8)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C", axis_order: Any = None) -> np.ndarray:
    # numpy's own _frombuffer (protocol 5), with the dtype rebuilt by _plain_dtype.
    if not isinstance(buf, (bytes, bytearray)):
        raise _refuse("a numpy array buffer that is not raw bytes")
    array = np.frombuffer(buf, dtype=_as_dtype(dtype))
    if order == "K" and axis_order is not None:  # a dense array with permuted axes
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _scalar(dtype: Any, data: Any = None) -> Any:
    # numpy.float32(1.5) pickles as scalar(dtype('float32'), b'\x00\x00\xc0?'): the bytes of one value.
    dt = _as_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise _refuse(f"a numpy scalar whose data is not the {dt.itemsize} bytes of one {dt}")
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
        raise _refuse(f"{kind.__name__}() of {what}")

    return make


def _latin1(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Protocol 0-2 pickles store bytes as latin-1 text: ``_codecs.encode(text, 'latin1')``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "iso-8859-1", "iso8859-1"):
        raise _refuse(f"codecs.encode with encoding {short_repr(encoding, 20)}")
    _charge(len(text))
    return codecs.encode(text, "latin1")


def _set_of(kind: type) -> Any:
    # Protocol 0-3 pickles write a set as set([members]); members are hashed, so only plain values.
    def make(*args: Any) -> Any:
        if not args:
            return kind()
        items = args[0]
        if len(args) != 1 or type(items) not in (list, tuple):
            raise _refuse(f"a {kind.__name__} of anything but plain values")
        _charge(64 * len(items))  # about what a set takes per member
        if not all(isinstance(x, _HASH_SAFE) for x in items):
            raise _refuse(f"a {kind.__name__} of anything but plain values")
        return kind(items)

    return make


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise _refuse("complex() of anything but two numbers")
    return complex(real, imag)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:  # OrderedDict pickles as OrderedDict() followed by SETITEMS
        raise _refuse("OrderedDict() with arguments")
    return OrderedDict()


# What each stack or memo slot holds, as far as the scan is concerned (the low 4 bits of a slot).
_LEAF, _STR, _TUPLE, _LIST, _DICT, _SET, _GLOBAL, _BUILDABLE, _OBJ = range(9)
_NOT_A_KEY = 0b1110  # kind bits that only kinds other than _LEAF and _STR (what may be hashed) have

# (module, name) -> (what find_class returns, the kind a call of it returns or None: not callable).
# Everything else is refused before it is looked up, so a payload's callable is never imported.
_GLOBALS: dict[tuple[str, str], tuple[Any, int | None]] = {
    ("builtins", "complex"): (_complex, _LEAF),
    ("builtins", "set"): (_set_of(set), _SET),
    ("builtins", "frozenset"): (_set_of(frozenset), _SET),
    ("builtins", "bytes"): (_bytes_of(bytes), _LEAF),
    ("builtins", "bytearray"): (_bytes_of(bytearray), _LEAF),
    ("collections", "OrderedDict"): (_ordered_dict, _DICT),
    ("_codecs", "encode"): (_latin1, _LEAF),
    ("codecs", "encode"): (_latin1, _LEAF),
    ("numpy", "dtype"): (_DtypeSpec, _BUILDABLE),
    ("numpy", "ndarray"): (np.ndarray, None),  # only as _reconstruct's first argument
}
for _name in ("dict", "list", "tuple", "str", "int", "float", "bool"):  # types as values, never called
    _GLOBALS[("builtins", _name)] = (getattr(builtins, _name), None)
# numpy scalar types appear as values (dtype classes) in old pickles; calling one would build an array.
for _name in ("bool", "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "str_", "bytes_"):
    _GLOBALS[("numpy", _name)] = (getattr(np, _name), None)
for _mod in ("numpy.core", "numpy._core"):  # NumPy 1.x and 2.x module names
    _GLOBALS[(f"{_mod}.multiarray", "_reconstruct")] = (_reconstruct, _BUILDABLE)
    _GLOBALS[(f"{_mod}.multiarray", "scalar")] = (_scalar, _LEAF)  # numpy scalars hash safely
    _GLOBALS[(f"{_mod}.numeric", "_frombuffer")] = (_frombuffer, _OBJ)
_GLOBAL_LIST = list(_GLOBALS)  # a slot of kind _GLOBAL holds its index here
_CALL_RESULT = [_GLOBALS[key][1] for key in _GLOBAL_LIST]
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
        raise _refuse(f"'{short_repr(module, 60)[1:-1]}.{short_repr(name, 60)[1:-1]}'")
    return index


# ------------------------------------------------------------------------------------ the scan

# A slot is an int: depth << 48 | info << 4 | kind, so max() over slots finds the deepest.
# info: for _STR the string's file offset << 8 | its length (0 when longer than 255 bytes: never
# a module or global name), for _GLOBAL its index in _GLOBAL_LIST.
_DEPTH = 48
_INFO_MASK = (1 << _DEPTH) - 1
_EMPTY_DICT = 1 << _DEPTH | _DICT

_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_Q = struct.Struct("<Q").unpack_from

_OP = {op.name: ord(op.code) for op in pickletools.opcodes}  # opcode name -> byte
# Opcodes that push one plain value from a fixed-size argument: opcode -> argument bytes.
_FIXED_LEAF = [-1] * 256
for _name, _size in (("BININT1", 1), ("BININT2", 2), ("BININT", 4), ("NONE", 0), ("NEWTRUE", 0),
                     ("NEWFALSE", 0), ("BINFLOAT", 8)):
    _FIXED_LEAF[_OP[_name]] = _size


def _deeper(depth: int) -> int:
    if depth > MAX_DEPTH:
        raise PickleRefused(f"not a valid annotation pickle: containers nested deeper than {MAX_DEPTH} levels")
    return depth << _DEPTH


def scan(buf: Any) -> None:
    """Check a pickle stream before it is loaded (see the module docstring).

    Args:
        buf: The whole file (bytes or a read-only mmap).

    Raises:
        PickleRefused: What is wrong, with the byte offset of a malformed or truncated stream.
    """
    end = len(buf)
    stack: list[int] = []
    marks: list[int] = []
    memo: list[int] = []
    push, remember, mark = stack.append, memo.append, marks.append
    pos, op = 0, -1
    # The common opcodes are handled inline, most frequent first (about 56 opcodes per clip in
    # a protocol 5 file); _RARE handles the rest. An argument, slot, mark or memo entry that is
    # not there raises IndexError, and so does reading past the end after a length that points
    # beyond it.
    fixed, rare, get4, results = _FIXED_LEAF, _RARE, _unpack_I, _CALL_RESULT
    LONG_BINGET, MEMOIZE, MARK, TUPLE, REDUCE, TUPLE2, BYTEARRAY8, SHORT_BINUNICODE, SETITEMS = (  # noqa: N806
        _OP[k] for k in ("LONG_BINGET", "MEMOIZE", "MARK", "TUPLE", "REDUCE", "TUPLE2", "BYTEARRAY8",
                         "SHORT_BINUNICODE", "SETITEMS"))
    TUPLE3, BINGET, BUILD, BINPUT, LONG_BINPUT, APPENDS, SETITEM, APPEND, TUPLE1, STOP, EMPTY_DICT = (  # noqa: N806
        _OP[k] for k in ("TUPLE3", "BINGET", "BUILD", "BINPUT", "LONG_BINPUT", "APPENDS", "SETITEM", "APPEND",
                         "TUPLE1", "STOP", "EMPTY_DICT"))
    try:
        while True:
            op = buf[pos]
            pos += 1
            skip = fixed[op]
            if skip >= 0:
                push(_LEAF)
                pos += skip
            elif op == LONG_BINGET:
                push(memo[get4(buf, pos)[0]])
                pos += 4
            elif op == MEMOIZE:
                remember(stack[-1])
            elif op == MARK:
                mark(len(stack))
            elif op == TUPLE:
                k = marks.pop()
                depth = (max(stack[k:]) >> _DEPTH) + 1 if len(stack) > k else 1
                del stack[k:]
                if depth > MAX_DEPTH:
                    _deeper(depth)
                push(depth << _DEPTH | _TUPLE)
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == REDUCE:
                args = stack.pop()
                func = stack[-1]
                if func & 15 != _GLOBAL or args & 15 != _TUPLE:
                    raise _refuse("a call of something other than an allowed function")
                result = results[(func & _INFO_MASK) >> 4]
                if result is None:
                    module, name = _GLOBAL_LIST[(func & _INFO_MASK) >> 4]
                    raise _refuse(f"a call of '{module}.{name}'")
                stack[-1] = (args >> _DEPTH) << _DEPTH | result
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == TUPLE2:
                b = stack.pop()
                depth = (max(stack[-1], b) >> _DEPTH) + 1
                if depth > MAX_DEPTH:
                    _deeper(depth)
                stack[-1] = depth << _DEPTH | _TUPLE
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == BYTEARRAY8:  # numpy array data (protocol 5): skipped by its length
                pos += 8 + _unpack_Q(buf, pos)[0]
                push(_LEAF)
                if buf[pos] == MEMOIZE:
                    remember(_LEAF)
                    pos += 1
            elif op == SHORT_BINUNICODE:
                n = buf[pos]
                push(((pos + 1) << 8 | n) << 4 | _STR)
                pos += 1 + n
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == SETITEMS or op == APPENDS:
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                _add_items(stack, items, _DICT if op == SETITEMS else _LIST)
            elif op == EMPTY_DICT:
                push(_EMPTY_DICT)
                if buf[pos] == MEMOIZE:
                    remember(_EMPTY_DICT)
                    pos += 1
            elif op == TUPLE3:
                c = stack.pop()
                b = stack.pop()
                stack[-1] = _deeper((max(stack[-1], b, c) >> _DEPTH) + 1) | _TUPLE
            elif op == BINGET:
                push(memo[buf[pos]])
                pos += 1
            elif op == BUILD:
                stack.pop()  # the state: _DtypeSpec and _GuardedArray check it themselves
                if stack[-1] & 15 != _BUILDABLE:
                    raise _refuse("object state (BUILD) for anything but a numpy array or dtype")
            elif op == BINPUT or op == LONG_BINPUT:
                if op == BINPUT:
                    index = buf[pos]
                    pos += 1
                else:
                    index = get4(buf, pos)[0]
                    pos += 4
                _put(memo, index, stack[-1])
            elif op == SETITEM:
                items = stack[-2:]
                del stack[-2:]
                _add_items(stack, items, _DICT)
            elif op == APPEND:
                _add_items(stack, [stack.pop()], _LIST)
            elif op == TUPLE1:
                stack[-1] = _deeper((stack[-1] >> _DEPTH) + 1) | _TUPLE
            elif op == STOP:
                if not stack:
                    raise IndexError
                return
            else:
                handler = rare.get(op)
                if handler is None:
                    raise PickleRefused(f"not a valid annotation pickle: unknown opcode 0x{op:02x} at byte {pos - 1}")
                pos = handler(buf, pos, stack, marks, memo)
    except (IndexError, struct.error):
        if pos >= end:
            raise PickleRefused(f"not a valid annotation pickle: the file ends in the middle of it at byte "
                                f"{min(pos, end)} (truncated?)") from None
        raise PickleRefused(f"not a valid annotation pickle: malformed at byte {pos - 1} "
                            f"(opcode 0x{op:02x})") from None


def _add_items(stack: list[int], items: list[int], kind: int) -> None:
    """APPEND(S), SETITEM(S) or ADDITEMS of ``items`` into the container now on top of ``stack``,
    which must be of ``kind``; dict keys and set members must be plain values."""
    target = stack[-1]
    if target & 15 != kind:
        what = {_DICT: "dict items", _LIST: "list items", _SET: "set members"}[kind]
        raise _refuse(f"{what} added to something else")
    if kind == _DICT and len(items) % 2:
        raise PickleRefused("not a valid annotation pickle: an odd number of dict items")
    keys = items[::2] if kind == _DICT else items if kind == _SET else ()
    # Keys must be _LEAF (0) or _STR (1): no kind bit above the lowest set in any of them.
    if keys and reduce(or_, keys) & _NOT_A_KEY:
        raise _refuse("a container or tuple as a dict key or set member")
    if items:
        depth = (max(items) >> _DEPTH) + 1
        if depth > target >> _DEPTH:
            stack[-1] = _deeper(depth) | (target & _INFO_MASK)


def _put(memo: list[int], index: int, slot: int) -> None:
    # The C unpickler sizes its memo by the largest index seen: 6 bytes could ask for 32 GiB.
    if index == len(memo):
        memo.append(slot)
    elif index < len(memo):
        memo[index] = slot
    else:
        raise PickleRefused(f"not a valid annotation pickle: memo index {index} beyond the {len(memo)} entries "
                            "stored so far")


def _line(buf: Any, pos: int) -> tuple[bytes, int]:
    """The text argument of a protocol 0 opcode (up to the newline) and the position after it."""
    stop = buf.find(b"\n", pos)
    if stop < 0:
        raise IndexError
    return bytes(buf[pos:stop]), stop + 1


def _index(text: bytes) -> int:
    if not text.isdigit() or len(text) > 10:
        raise PickleRefused(f"not a valid annotation pickle: memo index {short_repr(text, 20)}")
    return int(text)


def _text(buf: Any, slot: int) -> str:
    """The string a _STR slot points to (a STACK_GLOBAL module or name)."""
    info = (slot & _INFO_MASK) >> 4
    if slot & 15 != _STR or not info:
        raise _refuse("a global named by anything but a short string")
    start, n = info >> 8, info & 255
    return bytes(buf[start:start + n]).decode("utf-8", "replace")


# The rarer opcodes: handler(buf, pos, stack, marks, memo) -> the position after the argument.
_Handler = Callable[[Any, int, list[int], list[int], list[int]], int]


def _rare_handlers() -> dict[int, _Handler]:
    O = _OP  # noqa: N806
    handlers: dict[int, _Handler] = {}

    def refused(what: str) -> _Handler:
        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            raise _refuse(what)
        return handle

    for name, what in (("PERSID", "persistent ids"), ("BINPERSID", "persistent ids"),
                       ("INST", "class instances (INST)"), ("OBJ", "class instances (OBJ)"),
                       ("NEWOBJ", "class instances (NEWOBJ)"), ("NEWOBJ_EX", "class instances (NEWOBJ_EX)"),
                       ("EXT1", "extension-registry objects"), ("EXT2", "extension-registry objects"),
                       ("EXT4", "extension-registry objects"), ("NEXT_BUFFER", "out-of-band buffers"),
                       ("READONLY_BUFFER", "out-of-band buffers")):
        handlers[O[name]] = refused(what)

    def frame(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        if _unpack_Q(buf, pos)[0] > len(buf) - pos - 8:  # the C unpickler reads a whole frame at once
            raise PickleRefused(f"not a valid annotation pickle: the file ends inside the frame that starts at "
                                f"byte {pos - 1} (truncated?)")
        return pos + 8

    def proto(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        if buf[pos] > pickle.HIGHEST_PROTOCOL:
            raise PickleRefused(f"not a valid annotation pickle: unsupported protocol {buf[pos]}")
        return pos + 1

    def stack_global(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        name = stack.pop()
        stack[-1] = _resolve(_text(buf, stack[-1]), _text(buf, name)) << 4 | _GLOBAL
        return pos

    def global_(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        module, pos = _line(buf, pos)
        name, pos = _line(buf, pos)
        stack.append(_resolve(module.decode("utf-8", "replace"), name.decode("utf-8", "replace")) << 4 | _GLOBAL)
        return pos

    def counted(size: struct.Struct, text: bool) -> _Handler:
        width = size.size

        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            n = size.unpack_from(buf, pos)[0]
            start = pos + width
            if n < 0:
                raise PickleRefused("not a valid annotation pickle: a negative length")
            # Short strings remember where they are: STACK_GLOBAL names a global by two of them.
            stack.append((((start << 8 | n) << 4) if n < 256 else 0) | _STR if text else _LEAF)
            return start + n
        return handle

    for name, size, text in (("BINUNICODE", "<I", True), ("BINUNICODE8", "<Q", True), ("BINBYTES", "<I", False),
                             ("BINBYTES8", "<Q", False), ("BYTEARRAY8", "<Q", False), ("BINSTRING", "<i", False),
                             ("SHORT_BINBYTES", "<B", False), ("SHORT_BINSTRING", "<B", False),
                             ("LONG1", "<B", False), ("LONG4", "<i", False)):
        handlers[O[name]] = counted(struct.Struct(size), text)

    def text_line(kind: int) -> _Handler:
        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            pos = _line(buf, pos)[1]
            stack.append(kind)  # a protocol 0 string cannot name a STACK_GLOBAL (no offset kept)
            return pos
        return handle

    for name, kind in (("INT", _LEAF), ("LONG", _LEAF), ("FLOAT", _LEAF), ("STRING", _STR), ("UNICODE", _STR)):
        handlers[O[name]] = text_line(kind)

    def empty(kind: int) -> _Handler:
        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            stack.append(_deeper(1) | kind)
            return pos
        return handle

    for name, kind in (("EMPTY_DICT", _DICT), ("EMPTY_LIST", _LIST), ("EMPTY_SET", _SET), ("EMPTY_TUPLE", _TUPLE)):
        handlers[O[name]] = empty(kind)

    def from_mark(kind: int, add: int | None) -> _Handler:
        # LIST, DICT, FROZENSET build a container from the items above the mark; ADDITEMS adds
        # them to the set below the mark.
        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            k = marks.pop()
            items = stack[k:]
            del stack[k:]
            if add is None:
                stack.append(_deeper(1) | kind)
            _add_items(stack, items, kind)
            return pos
        return handle

    handlers[O["LIST"]] = from_mark(_LIST, None)
    handlers[O["DICT"]] = from_mark(_DICT, None)
    handlers[O["FROZENSET"]] = from_mark(_SET, None)
    handlers[O["ADDITEMS"]] = from_mark(_SET, 1)

    def get(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        text, pos = _line(buf, pos)
        stack.append(memo[_index(text)])
        return pos

    def put(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        text, pos = _line(buf, pos)
        _put(memo, _index(text), stack[-1])
        return pos

    def pop(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        if marks and marks[-1] == len(stack):  # the C unpickler pops a mark when the stack is at one
            marks.pop()
        else:
            stack.pop()
        return pos

    def pop_mark(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        del stack[marks.pop():]
        return pos

    def dup(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
        stack.append(stack[-1])
        return pos

    handlers.update({O["FRAME"]: frame, O["PROTO"]: proto, O["STACK_GLOBAL"]: stack_global, O["GLOBAL"]: global_,
                     O["GET"]: get, O["PUT"]: put, O["POP"]: pop, O["POP_MARK"]: pop_mark, O["DUP"]: dup})
    return handlers


_RARE = _rare_handlers()


# ------------------------------------------------------------------------------------- loading


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _GLOBALS[_GLOBAL_LIST[_resolve(module, name)]][0]

    def persistent_load(self, pid: Any) -> Any:
        raise _refuse("persistent ids")


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
        scan(view)
        size = len(view)
    f.seek(0)
    token = _copy_budget.set([_COPY_GROWTH * size + _COPY_SLACK])
    try:
        return finish(_Unpickler(f).load())
    except (PickleRefused, RecursionError, MemoryError):
        raise
    except Exception as e:  # a stream the scan let through can still fail (a bad dtype, a wrong size)
        detail = " ".join(str(e).split())
        raise PickleRefused(f"not a valid annotation pickle ({type(e).__name__}: {short_repr(detail, 100)})") from None
    finally:
        _copy_budget.reset(token)
