"""The roles of a federated program, as contracts a role slot's binding must meet.

A federated Module names role slots -- its ``Model``, ``DataSource``, ``Aggregator``,
``Codec`` and ``PeerSelector`` -- and the compile binds each to a class or an object
(bytesandbrains' role slots; Flower's ``Client``/``Strategy`` split). Binding checks the
contract here: every method of the role exists and accepts the role's arguments, every
attribute is there; a wrong binding is a :class:`~namu.errors.RoleBindingError` naming
the slot, the role and the method.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from typing import Any

from namu.errors import RoleBindingError

__all__ = ["ROLES", "Role", "check_binding"]


@dataclasses.dataclass(frozen=True)
class Role:
    """A role's contract.

    Attributes:
        name: the role's name (``"Model"``).
        methods: each method's name and the positional arguments a call passes it.
        attributes: attributes an implementation has (set in ``__init__`` or declared on
            the class).
        summary: what the role does.
    """

    name: str
    methods: dict[str, tuple[str, ...]]
    attributes: tuple[str, ...] = ()
    summary: str = ""


#: the roles, by name
ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("Model", {"params": (), "set_params": ("params",), "train": ("batches",), "evaluate": ("x", "y")},
             ("num_samples",), "the trained model: parameters as arrays, local training, evaluation"),
        Role("DataSource", {"batches": (), "labels": (), "size": ()}, (), "one client's data: batches, labels, size"),
        Role("Aggregator", {"begin": ("global_params",), "contribute": ("peer", "params", "num_samples"), "aggregate": ()},
             (), "the server's combination of a round's client parameters"),
        Role("Codec", {"encode": ("params",), "decode": ("payload",)}, (), "parameters to and from the wire"),
        Role("PeerSelector", {"sample": ("peers", "n", "round")}, (), "which of the available peers a round asks"),
    )
}


def check_binding(slot: str, role: str, impl: Any) -> None:
    """Check that ``impl`` (a class, or an instance) implements ``role`` for ``slot``.

    Raises:
        RoleBindingError: ``role`` is unknown, or a method is missing, not callable or
            cannot take the role's arguments, or an attribute is missing.
    """
    contract = ROLES.get(role)
    if contract is None:
        raise RoleBindingError(f"slot {slot!r}: unknown role {role!r}; the roles are {', '.join(sorted(ROLES))}")
    what = getattr(impl, "__qualname__", type(impl).__qualname__)
    for method, args in contract.methods.items():
        fn = getattr(impl, method, None)
        if fn is None or not callable(fn):
            raise RoleBindingError(f"slot {slot!r} is bound to {what}, which does not implement role {role}: "
                                   f"missing method {method}({', '.join(args)})")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            continue  # a builtin without a signature: trust it
        placeholders = [None] * (len(args) + (1 if inspect.isclass(impl) else 0))  # a class's method takes self
        try:
            signature.bind(*placeholders)
        except TypeError as exc:
            raise RoleBindingError(f"slot {slot!r} is bound to {what}, whose {method}{signature} cannot be called as "
                                   f"{method}({', '.join(args)}) (role {role}): {exc}") from None
    for attribute in contract.attributes:
        if not _has_attribute(impl, attribute):
            raise RoleBindingError(f"slot {slot!r} is bound to {what}, which does not implement role {role}: "
                                   f"missing attribute {attribute}")


@functools.cache
def bound(path: str) -> Any:
    """The class a role slot's call names (``"module:QualName"``, what ``resolve-slots``
    makes of ``aggregator()``), imported once: ``bound(aggregator)()`` in a task.

    Raises:
        ImportError: the module cannot be imported, or has no such class.
    """
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ImportError(f"role binding {path!r}: {module_name} has no {qualname}") from None
    return obj


def _has_attribute(impl: Any, name: str) -> bool:
    """An instance's attribute, or a class's: on the class, or annotated in its MRO."""
    if hasattr(impl, name):
        return True
    classes = impl.__mro__ if inspect.isclass(impl) else type(impl).__mro__
    return any(name in getattr(cls, "__annotations__", {}) for cls in classes)
