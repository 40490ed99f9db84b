"""The first pass of :mod:`skelact.data.safe_pickle`: a walk over a pickle's opcode stream that
refuses, before anything is built, what CPython's C unpickler would do unchecked.

The walk tracks only what each stack and memo slot holds: a kind (:data:`K_LEAF`, :data:`K_STR`,
:data:`K_TUPLE` ...), a nesting depth and, for short strings, where they lie in the file. It
refuses globals the caller's ``resolve`` does not know, calls of what is not meant to be called,
``BUILD`` on anything but a :data:`K_BUILDABLE` (a numpy array or dtype), containers or tuples as
dict keys or set members (hashing a nested tuple recurses in C), nesting deeper than
:data:`MAX_DEPTH`, memo indices beyond the memo (the C unpickler sizes its memo by them) and
lengths beyond the end of the file (it would allocate what they claim). Large byte strings (the
array data) are skipped by their length, so the walk costs a fraction of the load: about 0.3 us
an opcode, some 56 opcodes a clip.

Nesting built by appending to a container after it was placed in another (through the memo) is
not counted here; walking such a result hits Python's recursion limit instead.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
from collections.abc import Callable, Sequence
from functools import reduce
from operator import or_
from typing import Any

from skelact.errors import SkelactError, short_repr

__all__ = ["K_BUILDABLE", "K_DICT", "K_GLOBAL", "K_LEAF", "K_LIST", "K_OBJ", "K_SET", "K_STR", "K_TUPLE", "MAX_DEPTH",
           "PickleRefused", "refuse", "scan"]

#: Deepest nesting of containers accepted (an annotation file needs about 6).
MAX_DEPTH = 32

# What a stack or memo slot holds (the low 4 bits of a slot). The kinds a call returns are given
# by the caller (``results`` of :func:`scan`): K_BUILDABLE accepts BUILD, K_OBJ nothing.
K_LEAF, K_STR, K_TUPLE, K_LIST, K_DICT, K_SET, K_GLOBAL, K_BUILDABLE, K_OBJ = range(9)
_NOT_A_KEY = 0b1110  # kind bits only kinds other than K_LEAF and K_STR (what may be hashed) have


class PickleRefused(SkelactError, ValueError):
    """The stream is malformed or holds something other than plain data (the message says what)."""


def refuse(what: str) -> PickleRefused:
    """The error for content an annotation file has no use for."""
    return PickleRefused(f"refused to unpickle {what}: only containers, strings, numbers and plain "
                         "numeric numpy arrays are allowed in an annotation file")


# A slot is an int: depth << 48 | info << 4 | kind, so max() over slots finds the deepest.
# info: for K_STR the string's file offset << 8 | its length (0 when longer than 255 bytes: never
# a module or global name), for K_GLOBAL the index ``resolve`` gave it.
_DEPTH = 48
_INFO_MASK = (1 << _DEPTH) - 1
_EMPTY_DICT = 1 << _DEPTH | K_DICT

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


def scan(buf: Any, resolve: Callable[[str, str], int], results: Sequence[int | None], names: Sequence[str]) -> None:
    """Check a pickle stream before it is loaded (see the module docstring).

    Args:
        buf: The whole file (bytes or a read-only mmap).
        resolve: ``(module, name)`` of a global -> its index; raises :class:`PickleRefused` for
            a global that is not allowed.
        results: Index -> the kind a call of that global returns, None if it may not be called.
        names: Index -> the global's dotted name, for messages.

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
    fixed, rare, get4 = _FIXED_LEAF, _RARE, _unpack_I
    LONG_BINGET, MEMOIZE, MARK, TUPLE, REDUCE, TUPLE2, BYTEARRAY8, SHORT_BINUNICODE, SETITEMS = (  # noqa: N806
        _OP[k] for k in ("LONG_BINGET", "MEMOIZE", "MARK", "TUPLE", "REDUCE", "TUPLE2", "BYTEARRAY8",
                         "SHORT_BINUNICODE", "SETITEMS"))
    TUPLE3, BINGET, BUILD, BINPUT, LONG_BINPUT, APPENDS, SETITEM, APPEND, TUPLE1, STOP, EMPTY_DICT = (  # noqa: N806
        _OP[k] for k in ("TUPLE3", "BINGET", "BUILD", "BINPUT", "LONG_BINPUT", "APPENDS", "SETITEM", "APPEND",
                         "TUPLE1", "STOP", "EMPTY_DICT"))
    STACK_GLOBAL, GLOBAL = _OP["STACK_GLOBAL"], _OP["GLOBAL"]  # noqa: N806
    try:
        while True:
            op = buf[pos]
            pos += 1
            skip = fixed[op]
            if skip >= 0:
                push(K_LEAF)
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
                push(depth << _DEPTH | K_TUPLE)
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == REDUCE:
                args = stack.pop()
                func = stack[-1]
                if func & 15 != K_GLOBAL or args & 15 != K_TUPLE:
                    raise refuse("a call of something other than an allowed function")
                result = results[(func & _INFO_MASK) >> 4]
                if result is None:
                    raise refuse(f"a call of '{names[(func & _INFO_MASK) >> 4]}'")
                stack[-1] = (args >> _DEPTH) << _DEPTH | result
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == TUPLE2:
                b = stack.pop()
                depth = (max(stack[-1], b) >> _DEPTH) + 1
                if depth > MAX_DEPTH:
                    _deeper(depth)
                stack[-1] = depth << _DEPTH | K_TUPLE
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == BYTEARRAY8:  # numpy array data (protocol 5): skipped by its length
                pos += 8 + _unpack_Q(buf, pos)[0]
                push(K_LEAF)
                if buf[pos] == MEMOIZE:
                    remember(K_LEAF)
                    pos += 1
            elif op == SHORT_BINUNICODE:
                n = buf[pos]
                push(((pos + 1) << 8 | n) << 4 | K_STR)
                pos += 1 + n
                if buf[pos] == MEMOIZE:
                    remember(stack[-1])
                    pos += 1
            elif op == SETITEMS or op == APPENDS:
                k = marks.pop()
                items = stack[k:]
                del stack[k:]
                _add_items(stack, items, K_DICT if op == SETITEMS else K_LIST)
            elif op == EMPTY_DICT:
                push(_EMPTY_DICT)
                if buf[pos] == MEMOIZE:
                    remember(_EMPTY_DICT)
                    pos += 1
            elif op == TUPLE3:
                c = stack.pop()
                b = stack.pop()
                stack[-1] = _deeper((max(stack[-1], b, c) >> _DEPTH) + 1) | K_TUPLE
            elif op == BINGET:
                push(memo[buf[pos]])
                pos += 1
            elif op == BUILD:
                stack.pop()  # the state: _DtypeSpec and _GuardedArray check it themselves
                if stack[-1] & 15 != K_BUILDABLE:
                    raise refuse("object state (BUILD) for anything but a numpy array or dtype")
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
                _add_items(stack, items, K_DICT)
            elif op == APPEND:
                _add_items(stack, [stack.pop()], K_LIST)
            elif op == TUPLE1:
                stack[-1] = _deeper((stack[-1] >> _DEPTH) + 1) | K_TUPLE
            elif op == STOP:
                if not stack:
                    raise IndexError
                return
            elif op == STACK_GLOBAL:  # module and name: the two strings below
                name = stack.pop()
                stack[-1] = resolve(_text(buf, stack[-1]), _text(buf, name)) << 4 | K_GLOBAL
            elif op == GLOBAL:  # module and name: two lines of text
                module, pos = _line(buf, pos)
                name, pos = _line(buf, pos)
                push(resolve(module.decode("utf-8", "replace"), name.decode("utf-8", "replace")) << 4 | K_GLOBAL)
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
        what = {K_DICT: "dict items", K_LIST: "list items", K_SET: "set members"}[kind]
        raise refuse(f"{what} added to something else")
    if kind == K_DICT and len(items) % 2:
        raise PickleRefused("not a valid annotation pickle: an odd number of dict items")
    keys = items[::2] if kind == K_DICT else items if kind == K_SET else ()
    # Keys must be K_LEAF (0) or K_STR (1): no kind bit above the lowest set in any of them.
    if keys and reduce(or_, keys) & _NOT_A_KEY:
        raise refuse("a container or tuple as a dict key or set member")
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
    """The string a K_STR slot points to (a STACK_GLOBAL module or name)."""
    info = (slot & _INFO_MASK) >> 4
    if slot & 15 != K_STR or not info:
        raise refuse("a global named by anything but a short string")
    start, n = info >> 8, info & 255
    return bytes(buf[start:start + n]).decode("utf-8", "replace")


# The rarer opcodes: handler(buf, pos, stack, marks, memo) -> the position after the argument.
_Handler = Callable[[Any, int, list[int], list[int], list[int]], int]


def _rare_handlers() -> dict[int, _Handler]:
    O = _OP  # noqa: N806
    handlers: dict[int, _Handler] = {}

    def refused(what: str) -> _Handler:
        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            raise refuse(what)
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

    def counted(size: struct.Struct, text: bool) -> _Handler:
        width = size.size

        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            n = size.unpack_from(buf, pos)[0]
            start = pos + width
            if n < 0:
                raise PickleRefused("not a valid annotation pickle: a negative length")
            # Short strings remember where they are: STACK_GLOBAL names a global by two of them.
            stack.append((((start << 8 | n) << 4) if n < 256 else 0) | K_STR if text else K_LEAF)
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

    for name, kind in (("INT", K_LEAF), ("LONG", K_LEAF), ("FLOAT", K_LEAF), ("STRING", K_STR), ("UNICODE", K_STR)):
        handlers[O[name]] = text_line(kind)

    def empty(kind: int) -> _Handler:
        def handle(buf: Any, pos: int, stack: list[int], marks: list[int], memo: list[int]) -> int:
            stack.append(_deeper(1) | kind)
            return pos
        return handle

    for name, kind in (("EMPTY_DICT", K_DICT), ("EMPTY_LIST", K_LIST), ("EMPTY_SET", K_SET), ("EMPTY_TUPLE", K_TUPLE)):
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

    handlers[O["LIST"]] = from_mark(K_LIST, None)
    handlers[O["DICT"]] = from_mark(K_DICT, None)
    handlers[O["FROZENSET"]] = from_mark(K_SET, None)
    handlers[O["ADDITEMS"]] = from_mark(K_SET, 1)

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

    handlers.update({O["FRAME"]: frame, O["PROTO"]: proto, O["GET"]: get, O["PUT"]: put, O["POP"]: pop,
                     O["POP_MARK"]: pop_mark, O["DUP"]: dup})
    return handlers


_RARE = _rare_handlers()
