"""Content addressing: a stable BLAKE3 digest of a Python value.

:func:`content_digest` hashes a canonical serialization of the value, never ``hash()``
(salted per process by ``PYTHONHASHSEED``) nor ``pickle`` (whose bytes depend on
insertion order, object identity and protocol details). So equal values give equal
digests in every process, and the result cache and the checkpoint journal can key task
calls by their arguments.

The serialization is a prefix code: every value starts with a one-byte type tag;
scalars, strings and buffers follow with their length (8 bytes, big-endian) and
payload; containers with their item count and their items' encodings. It can be parsed
back unambiguously, so two values of different structure never share an encoding
(``["ab"]`` and ``["a", "b"]``, ``(1,)`` and ``[1]``, ``1`` and ``1.0`` and ``True``
all differ).

"Equal" means equal *with the same types*, which is what a task sees:

==================================  ===========================================================
value                               encoding (after the tag)
==================================  ===========================================================
``None``, ``bool``                  nothing / one byte
``int`` (any size)                  two's-complement big-endian bytes
``float``                           IEEE 754 binary64 bits: ``-0.0`` differs from ``0.0``;
                                    every NaN encodes as the one canonical quiet NaN
``str`` / ``bytes`` / ``bytearray`` UTF-8 (lone surrogates kept) / the bytes
``list`` / ``tuple``                count, then the items in order
``dict``                            count, then (key, value) pairs sorted by the key's encoding
``set`` / ``frozenset``             count, then the items' encodings sorted
``numpy.ndarray``                   dtype, shape and the C-contiguous bytes (object arrays:
                                    their items); ndarray subclasses are refused
numpy scalars                       dtype and bytes
dataclass instance                  ``module.qualname`` of the type, then every field by name
pydantic model                      ``module.qualname``, every field, then the extra fields
``enum.Enum`` member                ``module.qualname`` and the member's name
subclass of a type above            ``module.qualname``, the base type's encoding, then the
(``namedtuple``, ``OrderedDict``)   instance ``__dict__`` (or ``None``)
==================================  ===========================================================

Anything else raises :class:`~namu.errors.UnhashableValue` naming the type; callers take
it to mean "do not cache". A container that contains itself raises it too.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from typing import Any

import numpy as np
import pydantic
from blake3 import blake3

from namu.errors import UnhashableValue

__all__ = ["DIGEST_SIZE", "UnhashableValue", "content_digest"]

#: bytes in a digest.
DIGEST_SIZE = 32

#: prefix of every hashed serialization; bump the version when the encoding changes.
_FORMAT = b"namu.content/1\x00"
#: buffered encoding is handed to the hasher once it grows past this many bytes.
_FLUSH_BYTES = 1 << 16

_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_CANONICAL_NAN = bytes.fromhex("7ff8000000000000")

# One-byte type tags.
_NONE = b"N"
_FALSE = b"0"
_TRUE = b"1"
_INT = b"i"
_FLOAT = b"f"
_STR = b"s"
_BYTES = b"y"
_BYTEARRAY = b"Y"
_LIST = b"l"
_TUPLE = b"t"
_DICT = b"d"
_SET = b"S"
_FROZENSET = b"F"
_ARRAY = b"A"
_OBJECT_ARRAY = b"O"
_NUMPY_SCALAR = b"a"
_DATACLASS = b"D"
_PYDANTIC = b"P"
_ENUM = b"E"
_SUBCLASS = b"X"

#: the builtin base of a subclass -> its value as that exact base type. Base methods are
#: called unbound so that a subclass's overrides (``__str__``, ``__iter__``) cannot interfere.
_AS_BASE: dict[type, Any] = {
    int: int.__int__,
    float: float.__float__,
    str: str.__str__,
    bytes: lambda v: bytes(memoryview(v)),
    bytearray: lambda v: bytearray(memoryview(v)),
    list: list.copy,
    tuple: lambda v: tuple.__getitem__(v, slice(None)),
    dict: dict.copy,
    set: set.copy,
    frozenset: frozenset.copy,
}
_BUILTIN_BASES = tuple(_AS_BASE)


def content_digest(value: Any) -> bytes:
    """The BLAKE3 digest of ``value``'s canonical serialization (see the module docs).

    Args:
        value: any supported value, nested to any depth.

    Returns:
        :data:`DIGEST_SIZE` (32) bytes, identical across processes and hash seeds.

    Raises:
        UnhashableValue: ``value`` contains an unsupported type (named in the message)
            or a container that contains itself.
    """
    hasher = blake3(_FORMAT)
    sink = _Sink(hasher)
    try:
        _encode(value, sink, set())
    except RecursionError:
        raise UnhashableValue(
            "value is nested too deeply to be content-addressed", type_name=_type_name(value)
        ) from None
    sink.flush()
    return hasher.digest(length=DIGEST_SIZE)


class _Sink:
    """Collects the encoding; with a hasher, streams it there in large chunks."""

    __slots__ = ("buffer", "hasher")

    def __init__(self, hasher: Any = None) -> None:
        self.buffer = bytearray()
        self.hasher = hasher

    def write(self, data: bytes) -> None:
        self.buffer += data
        if self.hasher is not None and len(self.buffer) >= _FLUSH_BYTES:
            self.flush()

    def write_buffer(self, data: memoryview | bytes) -> None:
        """A large payload (array data): hashed in place rather than copied."""
        if self.hasher is None:
            self.buffer += data
            return
        self.flush()
        self.hasher.update(data)

    def flush(self) -> None:
        if self.hasher is not None and self.buffer:
            self.hasher.update(self.buffer)
            self.buffer.clear()


class _Leave:
    """Stack marker: the container with this id is fully encoded."""

    __slots__ = ("ident",)

    def __init__(self, ident: int) -> None:
        self.ident = ident


class _Raw:
    """Stack marker: bytes already encoded (a sorted key or set item)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _leaf(tag: bytes, payload: bytes) -> bytes:
    return tag + _U64.pack(len(payload)) + payload


def _str_leaf(text: str) -> bytes:
    return _leaf(_STR, text.encode("utf-8", "surrogatepass"))


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


def _float_bytes(x: float) -> bytes:
    return _CANONICAL_NAN if math.isnan(x) else _F64.pack(x)


def _encoding(value: Any, active: set[int]) -> bytes:
    """The serialization of ``value`` as bytes (for sorting dict keys and set items)."""
    sink = _Sink()
    _encode(value, sink, active)
    return bytes(sink.buffer)


def _encode(root: Any, sink: _Sink, active: set[int]) -> None:
    """Write ``root``'s serialization to ``sink``, iteratively (no recursion on nesting).

    ``active`` holds the ids of the containers being encoded (the current path), so a
    container met again inside itself is a cycle; a container shared by two branches is
    simply encoded twice.
    """
    stack: list[Any] = [root]
    write = sink.write
    while stack:
        value = stack.pop()
        cls = type(value)
        # Scalars first, by exact type (bool is checked before int; subclasses fall through).
        if value is None:
            write(_NONE)
        elif cls is _Raw:
            write(value.data)
        elif cls is _Leave:
            active.discard(value.ident)
        elif cls is bool:
            write(_TRUE if value else _FALSE)
        elif cls is int:
            write(_leaf(_INT, _int_bytes(value)))
        elif cls is float:
            write(_FLOAT + _float_bytes(value))
        elif cls is str:
            write(_str_leaf(value))
        elif cls is bytes:
            write(_leaf(_BYTES, value))
        elif cls is bytearray:
            write(_leaf(_BYTEARRAY, bytes(value)))
        elif cls is list or cls is tuple:
            _enter(value, active)
            write((_LIST if cls is list else _TUPLE) + _U64.pack(len(value)))
            stack.append(_Leave(id(value)))
            stack.extend(reversed(value))
        elif cls is dict:
            _enter(value, active)
            items = sorted(((_encoding(k, active), v) for k, v in value.items()), key=lambda kv: kv[0])
            write(_DICT + _U64.pack(len(items)))
            stack.append(_Leave(id(value)))
            for key_bytes, item in reversed(items):
                stack.append(item)
                stack.append(_Raw(key_bytes))
        elif cls is set or cls is frozenset:
            _enter(value, active)
            encoded = sorted(_encoding(item, active) for item in value)
            write((_SET if cls is set else _FROZENSET) + _U64.pack(len(encoded)))
            for item_bytes in encoded:
                write(item_bytes)
            active.discard(id(value))
        else:
            _encode_other(value, sink, stack, active)


def _enter(container: Any, active: set[int]) -> None:
    ident = id(container)
    if ident in active:
        raise UnhashableValue(
            f"a {_type_name(container)} contains itself; a self-referencing value cannot be "
            "content-addressed",
            type_name=_type_name(container),
        )
    active.add(ident)


def _encode_other(value: Any, sink: _Sink, stack: list[Any], active: set[int]) -> None:
    """Enums, numpy values, dataclasses, pydantic models and subclasses of builtins."""
    write = sink.write
    name = _type_name(value)
    if isinstance(value, enum.Enum):
        write(_ENUM + _str_leaf(name) + _str_leaf(value.name))
    elif type(value) is np.ndarray:
        _encode_array(value, sink, stack, active)
    elif isinstance(value, np.generic):
        dtype = _str_leaf(str(value.dtype.descr))
        write(_NUMPY_SCALAR + dtype + _leaf(_BYTES, value.tobytes()))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        _enter(value, active)
        write(_DATACLASS + _str_leaf(name) + _U64.pack(len(fields)))
        stack.append(_Leave(id(value)))
        for field in reversed(fields):
            stack.append(getattr(value, field.name))
            stack.append(_Raw(_str_leaf(field.name)))
    elif isinstance(value, pydantic.BaseModel):
        names = list(type(value).model_fields)
        _enter(value, active)
        write(_PYDANTIC + _str_leaf(name) + _U64.pack(len(names)))
        stack.append(_Leave(id(value)))
        stack.append(value.__pydantic_extra__ or None)
        for field_name in reversed(names):
            stack.append(getattr(value, field_name))
            stack.append(_Raw(_str_leaf(field_name)))
    elif isinstance(value, _BUILTIN_BASES):
        base = next(b for b in _BUILTIN_BASES if isinstance(value, b))
        _enter(value, active)
        write(_SUBCLASS + _str_leaf(name))
        stack.append(_Leave(id(value)))
        attrs = getattr(value, "__dict__", None)
        stack.append(dict(attrs) if attrs else None)
        stack.append(_AS_BASE[base](value))
    else:
        raise UnhashableValue(
            f"cannot content-address a value of type {name}: supported are None, bool, int, "
            "float, str, bytes, list, tuple, dict, set, numpy arrays and scalars, dataclasses, "
            "pydantic models and enums",
            type_name=name,
        )


def _encode_array(array: np.ndarray, sink: _Sink, stack: list[Any], active: set[int]) -> None:
    shape = _U64.pack(array.ndim) + b"".join(_U64.pack(d) for d in array.shape)
    if array.dtype.hasobject:
        if array.dtype.fields is not None:
            raise UnhashableValue(
                "cannot content-address a structured numpy array holding Python objects",
                type_name=_type_name(array),
            )
        _enter(array, active)
        sink.write(_OBJECT_ARRAY + shape)
        stack.append(_Leave(id(array)))
        stack.extend(reversed(array.ravel(order="C").tolist()))
        return
    data = np.ascontiguousarray(array)
    try:
        buffer: memoryview | bytes = memoryview(data).cast("B")
    except (TypeError, ValueError):  # dtypes the buffer protocol cannot express (datetime64)
        buffer = data.tobytes()
    sink.write(_ARRAY + _str_leaf(str(array.dtype.descr)) + shape + _U64.pack(len(buffer)))
    sink.write_buffer(buffer)
