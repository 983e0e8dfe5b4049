"""Python's builtins and non-mutating methods, called from a workflow.

* ``namu.Builtin``: one of :data:`BUILTINS` (``len``, ``range``, ``sorted``, ``int``, ...)
  on the inputs, keywords named by ``kwnames``;
* ``namu.IsInstance``: ``isinstance(x, (T, ...))`` for builtin classes named by ``types``;
* ``namu.CallMethod``: ``x.name(*args, **kwargs)`` for a method of :data:`METHODS`,
  the ones of ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``, ``int`` and
  ``float`` that return a value and change nothing;
* ``namu.Mutated``: ``x.name(*args, **kwargs)`` for a method of :data:`MUTATING` (or
  ``__setitem__``/``__delitem__``) run on a shallow copy of ``x``: the changed copy and
  the method's result (a workflow changes only containers it made and never handed
  elsewhere: :mod:`namu.frontend.mutation`).

An artifact names the builtin or the method; the op checks the name against these lists
when it is built, so an artifact cannot call ``eval``, ``open`` or ``list.append``.
Each result type is what Python gives where the operand types say it, else ``object``.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu.errors import IRVerificationError
from namu.ir.metadata import SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import ValueType, arithmetic_type, builtin_class, item_type, join_all
from namu.ops.registry import Built, OpEnv, Typer, op
from namu.ops.spans import with_span
from namu.runtime.tasks.bindings import input_splitter

__all__ = ["BUILTINS", "INSTANCE_TYPES", "ITEM_CHANGES", "METHODS", "MUTATING", "mutated_type"]

_INT, _FLOAT, _BOOL, _STR = ValueType.int(), ValueType.float(), ValueType.bool(), ValueType.str()
_OBJECT = ValueType.opaque()


def _numeric(args: list[ValueType]) -> ValueType:
    """``abs(x)``: the number's type (a bool gives an int)."""
    return (arithmetic_type("pos", args[:1]) if args else None) or _OBJECT


def _round(args: list[ValueType]) -> ValueType:
    if len(args) == 1:
        return _INT if args[0].is_numeric else _OBJECT
    return _numeric(args)


def _sum(args: list[ValueType]) -> ValueType:
    items = [item_type(args[0])] if args else []
    start = args[1:2] or [_INT]
    return arithmetic_type("add", items + start) or _OBJECT if items else _OBJECT


def _extreme(args: list[ValueType]) -> ValueType:
    """``min``/``max``: an item of the one iterable, or one of the arguments."""
    return item_type(args[0]) if len(args) == 1 else join_all(args)


def _listed(args: list[ValueType]) -> ValueType:
    return ValueType.list(item_type(args[0])) if args else ValueType.list(_OBJECT)


def _named(name: str) -> Callable[[list[ValueType]], ValueType]:
    return lambda _args: ValueType.opaque(name)


#: the builtins a workflow may call -> the type of their result, from the argument types
BUILTINS: dict[str, Callable[[list[ValueType]], ValueType]] = {
    "len": lambda _: _INT,
    "abs": _numeric,
    "round": _round,
    "sum": _sum,
    "min": _extreme,
    "max": _extreme,
    "any": lambda _: _BOOL,
    "all": lambda _: _BOOL,
    "bool": lambda _: _BOOL,
    "int": lambda _: _INT,
    "float": lambda _: _FLOAT,
    "str": lambda _: _STR,
    "repr": lambda _: _STR,
    "chr": lambda _: _STR,
    "ord": lambda _: _INT,
    "hash": lambda _: _INT,
    "divmod": _named("tuple"),
    "pow": lambda args: arithmetic_type("pow", args[:2]) or _OBJECT if len(args) == 2 else _OBJECT,
    "list": _listed,
    "sorted": _listed,
    "tuple": _named("tuple"),
    "dict": _named("dict"),
    "set": _named("set"),
    "frozenset": _named("frozenset"),
    "range": _named("range"),
    "slice": _named("slice"),
    "type": _named("type"),
    "enumerate": _named("enumerate"),
    "zip": _named("zip"),
    "reversed": _named("reversed"),
}

#: the classes ``isinstance`` may test in a workflow, by name
INSTANCE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (int, float, bool, str, bytes, list, tuple, dict, set, frozenset, complex, range, type(None))
}

_STR_RESULT = {
    "capitalize", "casefold", "center", "expandtabs", "format", "format_map", "join", "ljust", "lower", "lstrip",
    "removeprefix", "removesuffix", "replace", "rjust", "rstrip", "strip", "swapcase", "title", "translate",
    "upper", "zfill",
}
_BOOL_RESULT = {
    "endswith", "startswith", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier",
    "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "isdisjoint", "issubset",
    "issuperset", "is_integer",
}
_INT_RESULT = {"count", "find", "index", "rfind", "rindex", "bit_length", "bit_count"}
_STR_LIST_RESULT = {"split", "rsplit", "splitlines"}
_OTHER = {
    "partition", "rpartition", "encode", "decode", "hex", "get", "items", "keys", "values", "copy", "union",
    "intersection", "difference", "symmetric_difference", "as_integer_ratio", "to_bytes",
}
#: the methods a workflow may call: they return a value and change nothing
METHODS = frozenset(_STR_RESULT | _BOOL_RESULT | _INT_RESULT | _STR_LIST_RESULT | _OTHER)
#: the methods of builtin containers that change their receiver (refused in a workflow)
MUTATING = frozenset({
    "append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse", "update", "setdefault",
    "popitem", "add", "discard", "difference_update", "intersection_update", "symmetric_difference_update",
})

#: the item changes ``namu.Mutated`` runs besides :data:`MUTATING`: ``xs[k] = v``, ``del xs[k]``
ITEM_CHANGES = frozenset({"__setitem__", "__delitem__"})


def method_type(name: str, receiver: ValueType) -> ValueType:
    """The type of ``x.name(...)`` for ``x`` of type ``receiver``."""
    if name in _BOOL_RESULT:
        return _BOOL
    is_str = receiver.kind == "str"
    if is_str and name in _STR_RESULT:
        return _STR
    if is_str and name in _STR_LIST_RESULT:
        return ValueType.list(_STR)
    if name in ("bit_length", "bit_count") and receiver.kind in ("int", "bool"):
        return _INT
    if name in _INT_RESULT and (is_str or builtin_class(receiver) in (list, tuple, bytes)):
        return _INT
    if name == "copy" and builtin_class(receiver) is not None:
        return receiver
    return _OBJECT


def _where(node: ir.Node) -> str:
    return node.metadata_props.get(SPAN_KEY, "?")


def _kwnames(node: ir.Node) -> tuple[str, ...]:
    attr = node.attributes.get("kwnames")
    return tuple(attr.as_strings()) if attr is not None else ()


def _with_keywords(fn: Callable[..., Any], kwnames: tuple[str, ...]) -> Callable[..., Any]:
    """``fn`` taking its keyword arguments' values as its last ``len(kwnames)`` inputs."""
    if not kwnames:
        return fn
    split = input_splitter(kwnames)

    def call(*inputs: Any) -> Any:
        args, kwargs = split(inputs)
        return fn(*args, **kwargs)

    return call


def _builtin_type(_typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    rule = BUILTINS.get(node.attributes["name"].as_string())
    n_keywords = len(_kwnames(node))
    return [rule(args[: len(args) - n_keywords]) if rule is not None else _OBJECT]


@op(NAMU_DOMAIN, "Builtin", "Python's builtin `name` (len, range, sorted, int, ...) on the inputs, keywords named by `kwnames`",
    types=_builtin_type, fold="keep")  # not folded: `list(range(10**9))` or `hash(s)` (salted per process)
def _builtin(node: ir.Node, _env: OpEnv) -> Built:
    name = node.attributes["name"].as_string()
    if name not in BUILTINS:
        raise IRVerificationError(f"{_where(node)}: namu.Builtin {name!r} is not one of the builtins a workflow may call")
    return with_span(_with_keywords(getattr(builtins, name), _kwnames(node)), node), None


@op(NAMU_DOMAIN, "IsInstance", "isinstance(input 0, the builtin classes named by `types`)",
    types=lambda _t, _n, _a: [_BOOL], pure=True, raises=False, fold="evaluate")
def _is_instance(node: ir.Node, _env: OpEnv) -> Built:
    names = tuple(node.attributes["types"].as_strings())
    unknown = [n for n in names if n not in INSTANCE_TYPES]
    if unknown:
        raise IRVerificationError(f"{_where(node)}: namu.IsInstance cannot test {', '.join(unknown)}")
    classes = tuple(INSTANCE_TYPES[n] for n in names)
    return (lambda value: isinstance(value, classes)), None


@op(NAMU_DOMAIN, "CallMethod", "input 0 . `name` (the other inputs): a method that changes nothing (str.split, dict.get, ...)",
    types=lambda _t, node, args: [method_type(node.attributes["name"].as_string(), args[0])], fold="keep")
def _call_method(node: ir.Node, _env: OpEnv) -> Built:
    name = node.attributes["name"].as_string()
    if name not in METHODS:
        raise IRVerificationError(f"{_where(node)}: namu.CallMethod {name!r} is not one of the methods a workflow may call")

    def call(receiver: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(receiver, name)(*args, **kwargs)

    return with_span(_with_keywords(call, _kwnames(node)), node), None


def mutated_type(receiver: ValueType) -> ValueType:
    """The type of a ``namu.Mutated`` copy of a ``receiver``: a container of its class
    (its items may have any type now), else any value."""
    return ValueType.opaque(receiver.kind) if receiver.kind in ("list", "dict", "set") else _OBJECT


@op(NAMU_DOMAIN, "Mutated", "a shallow copy of input 0 changed by its method `name` (the other inputs its arguments), "
    "and the method's result", types=lambda _t, _n, args: [mutated_type(args[0] if args else _OBJECT), _OBJECT],
    pure=True, fresh=True)
def _mutated(node: ir.Node, _env: OpEnv) -> Built:
    name = node.attributes["name"].as_string()
    if name not in MUTATING and name not in ITEM_CHANGES:
        raise IRVerificationError(f"{_where(node)}: namu.Mutated {name!r} is not a method that changes a container")

    def mutated(receiver: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        changed = copy.copy(receiver)
        return changed, getattr(changed, name)(*args, **kwargs)

    return with_span(_with_keywords(mutated, _kwnames(node)), node), None
