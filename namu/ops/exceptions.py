"""Ops of a workflow's error handling: matching a caught exception and raising one.

A ``try`` statement lowers to ``namu.Try`` catch regions (:mod:`namu.ops.control`)
whose handler receives the exception *as the run saw it*: a failed task call arrives as
:class:`~namu.errors.TaskError` with the task's own exception as ``__cause__``. The ops
here look through that wrapper, so ``except ValueError`` matches what the task raised:

* ``namu.ExceptionMatches``: whether the exception (or one it wraps) is an instance of
  the classes named by ``types``;
* ``namu.Caught``: that exception, the value ``except ... as e`` binds;
* ``namu.Raise``: raise input 0 (an exception, or an exception class), or -- with
  ``exception`` naming an exception class -- a new one made from the inputs
  (``raise ValueError("bad")``, ``assert x, "message"``); with ``cause``, the last input
  is the exception's cause (``raise ... from e``, ``from None``).

Classes are named ``"module:qualname"`` and imported when the op is built, as a task is.
"""

from __future__ import annotations

import importlib
from typing import Any

import onnx_ir as ir

from namu.errors import TaskError, TaskResolutionError
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import ValueType
from namu.ops.registry import Built, OpEnv, op
from namu.ops.spans import span_note

__all__ = ["class_name", "resolve_class", "unwrapped"]

_BOOL = ValueType.bool()
_EXCEPTION = ValueType.opaque("BaseException")


def class_name(cls: type) -> str:
    """``"module:qualname"`` of ``cls``, the name an artifact stores."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_class(name: str) -> type[BaseException]:
    """The exception class named ``"module:qualname"``.

    Raises:
        TaskResolutionError: the module cannot be imported, or it has no such class.
    """
    module_name, _, qualname = name.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise TaskResolutionError(f"exception class {name!r} of an `except` clause cannot be imported: {exc}") from exc
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        raise TaskResolutionError(f"{name!r} of an `except` clause is not an exception class")
    return value


def unwrapped(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it wraps, innermost first: a task's own exception, then
    the :class:`~namu.errors.TaskError` a run reports it as."""
    chain = [exc]
    while isinstance(chain[-1], TaskError) and isinstance(chain[-1].__cause__, BaseException):
        chain.append(chain[-1].__cause__)
    return chain[::-1]


def _classes(node: ir.Node) -> tuple[type[BaseException], ...]:
    return tuple(resolve_class(name) for name in node.attributes["types"].as_strings())


@op(NAMU_DOMAIN, "ExceptionMatches", "whether exception input 0, or the task exception it wraps, is an instance of "
    "the classes named by `types`", types=lambda _t, _n, _a: [_BOOL], pure=True, raises=False)
def _exception_matches(node: ir.Node, _env: OpEnv) -> Built:
    classes = _classes(node)
    return (lambda exc: any(isinstance(e, classes) for e in unwrapped(exc))), None


@op(NAMU_DOMAIN, "Caught", "the exception of input 0 (or the task exception it wraps) that is an instance of the classes "
    "named by `types`: what `except ... as name` binds", types=lambda _t, _n, _a: [_EXCEPTION], pure=True)
def _caught(node: ir.Node, _env: OpEnv) -> Built:
    classes = _classes(node)

    def caught(exc: BaseException) -> BaseException:
        for e in unwrapped(exc):
            if isinstance(e, classes):
                return e
        raise exc  # the handler runs only after ExceptionMatches said yes

    return caught, None


@op(NAMU_DOMAIN, "Raise", "raise input 0, or a new exception of the class named by `exception` made from the inputs; "
    "with `cause` set, the last input is its __cause__ (`raise ... from ...`)", types=lambda _t, _n, _a: [])
def _raise(node: ir.Node, _env: OpEnv) -> Built:
    attr = node.attributes.get("exception")
    cause_attr = node.attributes.get("cause")
    with_cause = cause_attr is not None and bool(cause_attr.as_int())
    note = span_note(node)
    cls = resolve_class(attr.as_string()) if attr is not None else None

    def raise_(*inputs: Any) -> None:
        args, cause = (inputs[:-1], inputs[-1]) if with_cause else (inputs, None)
        value = cls(*args) if cls is not None else args[0]
        if not (isinstance(value, BaseException) or (isinstance(value, type) and issubclass(value, BaseException))):
            raise note(TypeError("exceptions must derive from BaseException"))
        if not with_cause:
            raise value
        if cause is not None and not isinstance(cause, BaseException) and not (isinstance(cause, type) and issubclass(cause, BaseException)):
            raise note(TypeError("exception causes must derive from BaseException"))
        raise value from cause

    return raise_, None
