"""``namu.slot``: a role slot, a named placeholder a workflow calls without knowing the
implementation (an agent's LLM, a federated Module's aggregator).

::

    llm = namu.slot("llm", returns=str)

    @namu.workflow
    def answer(question: str) -> str:
        return llm(question)          # lowers to namu.Slot <slot = "llm"> (question)

    art = namu.compile(answer, slots={"llm": ask_claude})   # binds it to a @namu.task

The ``resolve-slots`` pass replaces every slot call by a call of the task bound to it at
compile time (``namu compile --slot llm=ask_claude`` on the command line); a binding
named ``"placement/slot"`` applies in that partition only.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from namu.errors import TaskDefinitionError, UnboundSlotError

if TYPE_CHECKING:
    from namu.ir.types import ValueType

__all__ = ["Slot", "slot"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class Slot:
    """A role slot. Call it inside a ``@namu.workflow``; bind it when compiling.

    Args:
        name: the slot's name, the key of its binding (letters, digits, ``_`` and ``.``).
        returns: the annotation of what the slot returns (its implementations must
            agree); None: an opaque value.

    Raises:
        TaskDefinitionError: ``name`` is not a valid slot name.
    """

    def __init__(self, name: str, *, returns: Any = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise TaskDefinitionError(f"invalid slot name {name!r}: use letters, digits, '_' and '.'")
        self.name = name
        self.returns = returns

    @functools.cached_property
    def return_type(self) -> ValueType:
        """The :class:`ValueType` of the slot's result (opaque ``object`` if undeclared)."""
        from namu.ir.types import ValueType, from_annotation

        return ValueType.opaque() if self.returns is None else from_annotation(self.returns)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnboundSlotError(
            f"slot {self.name!r} can only be called inside a @namu.workflow; bind it at compile time "
            f"(namu.compile(wf, slots={{{self.name!r}: some_task}}) or `namu compile --slot {self.name}=TASK`)"
        )

    def __repr__(self) -> str:
        return f"<namu.slot {self.name}>"


def slot(name: str, *, returns: Any = None) -> Slot:
    """Declare a role slot (see :class:`Slot`): ``llm = namu.slot("llm", returns=str)``."""
    return Slot(name, returns=returns)
