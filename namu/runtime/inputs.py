"""Workflow inputs: bind a call's arguments to the signature, check them, convert CLI values.

A value passed from Python (``wf(...)``, ``Artifact.run``) reaches the workflow
**unchanged** when it fits the parameter's annotation, and is refused with
:class:`~namu.errors.InputError` when it does not: the workflow sees what ``wf.fn`` would
see. "Fits" is PEP 484's reading of the annotation, numeric tower included: an ``int``
(or a ``bool``) is acceptable where a ``float`` is annotated and a ``bool`` where an
``int`` is, and stays what it is; ``list[T]`` needs a list whose items fit ``T``,
``tuple[A, B]`` a tuple of two fitting items, ``dict``/``tuple``/``list``/... an instance
of that class. Unannotated parameters, ``object``, ``Any`` and classes other than
builtins take any value.

Values given as text or JSON (the ``namu run`` command line, ``--inputs`` files) are
converted to the annotation explicitly by :func:`from_json` first: ``3`` for a ``float``
becomes ``3.0``, a JSON array for a ``tuple`` a tuple.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from itertools import repeat
from typing import Any

from namu.errors import InputError
from namu.ir.metadata import Signature
from namu.ir.types import ValueType, builtin_class, parse_type

__all__ = ["InputBinder", "from_json"]

#: why a value does not fit a type (None: it fits).
Check = Callable[[Any], "str | None"]

#: the classes whose instances fit each scalar type (PEP 484's numeric tower).
_SCALAR_CLASSES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "str": (str,),
}
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def _checker(vtype: ValueType) -> Check | None:
    """A function telling why a value does not fit ``vtype`` (None when it fits); None
    when every value fits."""
    if vtype.kind in _SCALAR_CLASSES:
        classes = _SCALAR_CLASSES[vtype.kind]
        return lambda value: None if isinstance(value, classes) else ""
    if vtype.kind == "list":
        return _sequence_checker(list, vtype.elem)
    if vtype.items is not None:
        return _tuple_checker(vtype.items)
    cls = builtin_class(vtype) if vtype.kind == "opaque" else None
    if cls is None or cls is object:  # object, user classes, unknown names: not checked
        return None
    return lambda value: None if isinstance(value, cls) else ""


def _sequence_checker(cls: type, elem: ValueType | None) -> Check:
    item_check = _checker(elem) if elem is not None else None
    # items of a scalar type: one isinstance per item, in C (a list of 100,000 ints: ~3 ms)
    classes = _SCALAR_CLASSES.get(elem.kind) if elem is not None else None

    def check(value: Any) -> str | None:
        if not isinstance(value, cls):
            return ""
        if item_check is None or (classes is not None and all(map(isinstance, value, repeat(classes)))):
            return None
        for index, item in enumerate(value):
            reason = item_check(item)
            if reason is not None:
                return f"item {index} is {_REPR.repr(item)} ({type(item).__name__})" + (f": {reason}" if reason else "")
        return None

    return check


def _tuple_checker(items: tuple[ValueType, ...]) -> Check:
    item_checks = [_checker(t) for t in items]

    def check(value: Any) -> str | None:
        if not isinstance(value, tuple):
            return ""
        if len(value) != len(item_checks):
            return f"{len(value)} items, not {len(item_checks)}"
        for index, (item, item_check) in enumerate(zip(value, item_checks)):
            reason = item_check(item) if item_check is not None else None
            if reason is not None:
                return f"item {index} is {_REPR.repr(item)} ({type(item).__name__})" + (f": {reason}" if reason else "")
        return None

    return check


class InputBinder:
    """Turns ``(*args, **kwargs)`` into the ordered list of graph inputs, unchanged.

    Each value is checked against its parameter's type (see the module docstring);
    nothing is converted.
    """

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self._py_signature = signature.python()
        self._types: dict[str, ValueType] = {p.name: parse_type(p.type) for p in signature.params}
        self._checks: dict[str, Check] = {}
        for name, vtype in self._types.items():
            check = _checker(vtype)
            if check is not None:
                self._checks[name] = check

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The graph inputs for this call: the arguments, then the defaults, in order.

        Raises:
            InputError: an argument is missing, unknown, or does not fit its parameter's
                type; the message names the parameter, the expected type and the type
                of the value given. (Defaults are the workflow's own: not checked.)
        """
        try:
            bound = self._py_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{self.signature.name}(): {exc}") from None
        for name, value in bound.arguments.items():
            check = self._checks.get(name)
            reason = check(value) if check is not None else None
            if reason is not None:
                raise InputError(
                    f"{self.signature.name}(): parameter `{name}` expects {self._types[name]}, "
                    f"got {_REPR.repr(value)} ({type(value).__name__})" + (f": {reason}" if reason else ""),
                    parameter=name,
                )
        bound.apply_defaults()
        return list(bound.arguments.values())


def from_json(value: Any, vtype: ValueType, where: str) -> Any:
    """Convert ``value`` (as ``json.loads`` gives it) to the Python value of type ``vtype``:
    a number for a ``float`` becomes a float, an array for a ``tuple`` a tuple (items
    converted), an array for a ``list[T]`` a list of converted items; other values stay.

    Args:
        value: the decoded JSON value.
        vtype: the parameter's type.
        where: names the value in errors (``calc(): parameter `xs```).

    Returns:
        The converted value (checked later by :class:`InputBinder`, like any argument).

    Raises:
        InputError: ``value`` cannot become a ``vtype`` (``"3"`` for an ``int``, ``1`` for
            a ``bool``, an object for a list, a float too large, ...).
    """
    def refuse(detail: str = "") -> InputError:
        return InputError(f"{where} expects {vtype}, got {_REPR.repr(value)} ({type(value).__name__}){detail}")

    if vtype.kind in ("int", "float") and isinstance(value, bool):
        raise refuse()  # JSON true/false is not a number
    if vtype.kind == "float" and isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise refuse(": too large for a float") from None
    if vtype.kind == "list" and isinstance(value, list):
        elem = vtype.elem or ValueType.opaque()
        return [from_json(item, elem, f"{where} item {i}") for i, item in enumerate(value)]
    if vtype.items is not None and isinstance(value, list):
        if len(value) != len(vtype.items):
            raise refuse(f": {len(value)} items, not {len(vtype.items)}")
        return tuple(from_json(item, t, f"{where} item {i}") for i, (item, t) in enumerate(zip(value, vtype.items)))
    if vtype.kind == "opaque" and vtype.name == "tuple" and isinstance(value, list):
        return tuple(value)
    check = _checker(vtype)
    if check is not None and check(value) is not None:
        raise refuse()
    return value
