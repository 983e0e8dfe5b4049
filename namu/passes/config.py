"""``CompileConfig``: the options of one compile, shared by every pass.

Passes read it (``expand-defaults`` takes task defaults from it, ``resolve-slots`` the
slot bindings, ``verify-runtime-complete`` stamps it into the passport); none mutate it.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

__all__ = ["DEFAULT_PLACEMENT", "CompileConfig"]

#: the placement of everything not annotated otherwise: the process that runs the workflow.
DEFAULT_PLACEMENT = "local"


class CompileConfig(pydantic.BaseModel):
    """Options of one compile (``namu.compile(wf, config=...)`` or ``namu compile`` flags).

    Attributes:
        opt_level: 0 runs verification, inlining, partitioning and lowering only;
            1 adds constant folding, CSE and dead-code elimination; 2 (default) runs the
            whole pipeline.
        disabled_passes: optional passes to skip (required ones cannot be disabled).
        retries: default ``retries`` of tasks that do not set their own.
        timeout_s: default ``timeout_s`` (seconds) of tasks that do not set their own.
        cache: default ``cache`` of tasks that do not set their own.
        priority: default scheduling ``priority`` of tasks that do not set their own.
        placement: the placement of ops not annotated otherwise (``"local"``).
        wire_timeout_s: how long a ``Recv`` waits for its ``Send`` before the run fails
            (seconds), or None to wait forever.
        fanout_deadline_s: how long a remote fan-out (``namu.Scatter``: a federated
            round's requests to its clients) may take, in seconds; at its deadline it
            closes with the replies it has. Finite, so a round never waits forever.
        min_replies: replies a remote fan-out needs to close at its deadline; with fewer
            the run fails naming the missing peers.
        peer_max_failures: missed deadlines or errors in a row after which a peer is
            marked down and not asked until it speaks again.
        slots: role-slot bindings, ``{"slot": impl}`` for every partition or
            ``{"placement/slot": impl}`` for one; an impl is a ``@namu.task``.
        check_guarantees: after every run of a pass, check its stated guarantees
            (``NamuPass.ensures``) and raise ``PassError`` naming the pass and the
            broken guarantee. A debugging aid for pass authors (the tests compile the
            sample workflows with it); it changes no artifact and is not recorded in
            the passport.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    opt_level: Literal[0, 1, 2] = 2
    disabled_passes: tuple[str, ...] = ()
    retries: int = pydantic.Field(default=0, ge=0)
    timeout_s: float | None = pydantic.Field(default=None, gt=0)
    cache: bool = False
    priority: int = 0
    placement: str = pydantic.Field(default=DEFAULT_PLACEMENT, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    wire_timeout_s: float | None = pydantic.Field(default=None, gt=0)
    fanout_deadline_s: float = pydantic.Field(default=300.0, gt=0)
    min_replies: int = pydantic.Field(default=1, ge=0)
    peer_max_failures: int = pydantic.Field(default=3, ge=1)
    slots: dict[str, Any] = pydantic.Field(default_factory=dict)
    check_guarantees: bool = False

    def summary(self) -> dict[str, Any]:
        """The options as JSON-able data for the passport (slot bindings by name;
        ``check_guarantees``, which changes no artifact, left out)."""
        data = self.model_dump(exclude={"slots", "check_guarantees"})
        data["disabled_passes"] = list(self.disabled_passes)
        data["slots"] = {k: getattr(v, "name", repr(v)) for k, v in sorted(self.slots.items())}
        return data
