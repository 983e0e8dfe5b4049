"""Bind and validate workflow inputs against the workflow's signature (with pydantic)."""

from __future__ import annotations

import inspect
from typing import Any

import pydantic

from namu.errors import InputError
from namu.ir.metadata import Signature
from namu.ir.types import ValueType, parse_type, python_type

__all__ = ["InputBinder"]


class InputBinder:
    """Turns ``(*args, **kwargs)`` into the ordered list of graph inputs.

    Values are validated (and converted, pydantic's lax mode: ``"3"`` -> ``3`` for an
    ``int``) against the parameter's type. Opaque types (``object``, classes) pass as is.
    """

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        params = []
        for p in signature.params:
            default = p.default if p.has_default else inspect.Parameter.empty
            params.append(inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default))
        self._py_signature = inspect.Signature(params)
        self._types: list[ValueType] = [parse_type(p.type) for p in signature.params]
        self._adapters: list[pydantic.TypeAdapter[Any] | None] = [
            None if t.kind == "opaque" and python_type(t) is Any else pydantic.TypeAdapter(python_type(t))
            for t in self._types
        ]

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The graph inputs for this call.

        Raises:
            InputError: an argument is missing, unknown, or of the wrong type; the message
                names the parameter and the expected type.
        """
        try:
            bound = self._py_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{self.signature.name}(): {exc}") from None
        bound.apply_defaults()
        values = []
        for param, vtype, adapter in zip(self.signature.params, self._types, self._adapters):
            value = bound.arguments[param.name]
            if adapter is not None:
                try:
                    value = adapter.validate_python(value)
                except pydantic.ValidationError as exc:
                    reason = exc.errors()[0]["msg"]
                    raise InputError(
                        f"{self.signature.name}(): parameter `{param.name}` expects {vtype}, "
                        f"got {value!r} ({type(value).__name__}): {reason}",
                        parameter=param.name,
                    ) from None
            values.append(value)
        return values
