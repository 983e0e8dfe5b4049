"""Tools whose input is a pydantic model: the JSON Schema the model sees and the
validation of what it sends come from the same class, so they cannot disagree."""

from __future__ import annotations

import abc
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from namu.errors import ToolError
from namu.runtime.tools.base import Tool

__all__ = ["ToolInput", "TypedTool", "describe_validation_error"]


class ToolInput(BaseModel):
    """Base of a tool's input model: unknown keys are errors (the model misspelt one)."""

    model_config = ConfigDict(extra="forbid")


class TypedTool(Tool):
    """A :class:`Tool` whose arguments are validated by ``input_model`` before :meth:`run`.

    Args:
        name: the tool's name.
        description: what it does, for the model.
        input_model: the pydantic model of its input; :attr:`input_schema` is its JSON Schema.
        timeout_s: the limit of one call, in seconds.
    """

    def __init__(self, name: str, description: str, input_model: type[BaseModel], timeout_s: float) -> None:
        self.name = name
        self.description = description
        self.input_model = input_model
        self.timeout_s = timeout_s
        schema = input_model.model_json_schema()
        schema.pop("title", None)
        self.input_schema = schema

    async def call(self, arguments: dict[str, Any]) -> str:
        """Validate ``arguments`` with :attr:`input_model`, then :meth:`run` on them.

        Raises:
            ToolError: the arguments do not fit the schema (which key, and why), or
                :meth:`run` refused them.
        """
        try:
            parsed = self.input_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(f"invalid input for {self.name}: {describe_validation_error(exc)}") from exc
        return await self.run(parsed)

    @abc.abstractmethod
    async def run(self, arguments: Any) -> str:
        """Run the tool on validated ``arguments`` (an instance of :attr:`input_model`)."""


def describe_validation_error(exc: ValidationError) -> str:
    """Each error of ``exc`` as ``key.path: message``, joined by ``; `` (no pydantic URLs,
    which a model cannot use)."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "input"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
