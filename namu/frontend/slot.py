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

A **role slot** (``role=``) is bound to a class instead: the binding is checked against
the role's contract at compile time (a federated program's ``Aggregator``, ``Model``,
...; :mod:`namu.federated.roles`), and the call ``aggregator()`` is the class's import
path, a string a task turns back into the class with ``namu.federated.bound``::

    aggregator = namu.slot("aggregator", role="Aggregator", default=FedAvg)
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
        role: the role a class bound to the slot implements (``"Aggregator"``); the
            slot's call then returns the bound class's import path (``str``).
        default: the binding when the compile gives none (a role slot's class, or a task).

    Raises:
        TaskDefinitionError: ``name`` is not a valid slot name, or ``returns`` is given
            with ``role``.
    """

    def __init__(self, name: str, *, returns: Any = None, role: str | None = None, default: Any = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise TaskDefinitionError(f"invalid slot name {name!r}: use letters, digits, '_' and '.'")
        if role is not None and returns is not None:
            raise TaskDefinitionError(f"slot {name!r}: a role slot returns its class's import path (str); drop returns=")
        self.name = name
        self.returns = str if role is not None else returns
        self.role = role
        self.default = default

    @functools.cached_property
    def return_type(self) -> ValueType:
        """The :class:`ValueType` of the slot's result (opaque ``object`` if undeclared)."""
        from namu.ir.types import ValueType, from_annotation

        return ValueType.opaque() if self.returns is None else from_annotation(self.returns)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Outside a workflow (the plain function run as Python), the default binding:
        a role slot's class's import path, or the default task called.

        Raises:
            UnboundSlotError: the slot has no default.
        """
        if self.default is not None:
            if self.role is not None:
                return f"{self.default.__module__}:{self.default.__qualname__}"
            return self.default(*args, **kwargs)
        raise UnboundSlotError(
            f"slot {self.name!r} can only be called inside a @namu.workflow; bind it at compile time "
            f"(namu.compile(wf, slots={{{self.name!r}: some_task}}) or `namu compile --slot {self.name}=TASK`)"
        )

    def __repr__(self) -> str:
        return f"<namu.slot {self.name}>"


def slot(name: str, *, returns: Any = None, role: str | None = None, default: Any = None) -> Slot:
    """Declare a role slot (see :class:`Slot`): ``llm = namu.slot("llm", returns=str)``,
    ``aggregator = namu.slot("aggregator", role="Aggregator", default=FedAvg)``."""
    return Slot(name, returns=returns, role=role, default=default)
