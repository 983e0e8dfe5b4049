"""Remote fan-outs at run time: ``namu.Scatter`` / ``namu.Gather`` over a federation.

The ``partition`` pass splits a fan-out placed at a peer class (``client``) out of the
control flow that runs elsewhere (a server's round loop): the enclosing body keeps a
``namu.Scatter`` (one request per item, to the peer the item names: ``str(item)``) and
a ``namu.Gather`` (the replies, in item order), and the fan-out's body becomes that peer
class's **handler partition**. A run of such a model needs a :class:`Federation`: what
carries requests to peers and replies back. By default a run opens a
:class:`~namu.federated.local.LocalFederation`, every peer simulated in this process
over an in-process bus; ``namu federated server`` installs a gRPC one
(:mod:`namu.federated.grpc_wire`) with :func:`use_federation`.

The protocol itself -- deadlines, ``min_replies``, dedup, peer health, backoff -- lives
in the sans-IO :class:`~namu.federated.node.ServerNode`; the gates are attributes of
``namu.Scatter`` that ``insert-resilience-gates`` sets from the compile's options.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Protocol

import onnx_ir as ir

from namu.ir.metadata import SPAN_KEY
from namu.runtime.hooks import RunHooks

__all__ = [
    "Federation",
    "FederatedRunner",
    "RoundLog",
    "WireGates",
    "current_federation",
    "gather_coroutine_fn",
    "scatter_op",
    "use_federation",
]

logger = logging.getLogger(__name__)

#: the federation of the current run
_FEDERATION: contextvars.ContextVar[Federation | None] = contextvars.ContextVar("namu_federation", default=None)
#: what opens a run's federation when the caller installed none (``use_federation``)
_FACTORY: contextvars.ContextVar[Callable[[FederatedRunner], contextlib.AbstractContextManager[Federation]] | None] = (
    contextvars.ContextVar("namu_federation_factory", default=None)
)

#: run one request of a remote fan-out: (inputs) -> outputs
Handler = Callable[[list[Any]], list[Any]]
#: a peer class's handlers, by channel
Handlers = Mapping[str, Handler]


@dataclasses.dataclass(frozen=True, slots=True)
class WireGates:
    """The gates of one ``namu.Scatter`` (its attributes; see ``insert-resilience-gates``).

    Attributes:
        deadline_s: how long the exchange may take (seconds).
        min_replies: answers needed to close at the deadline; fewer fail the run.
        max_failures: failures in a row after which a peer is marked down.
        backoff_base_s: first delay before re-sending an undeliverable request (seconds).
        backoff_max_s: longest such delay (seconds).
    """

    deadline_s: float = 300.0
    min_replies: int = 1
    max_failures: int = 3
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0

    @classmethod
    def of(cls, node: ir.Node) -> WireGates:
        """The gates written on ``node`` (defaults for those it lacks)."""
        found: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            attr = node.attributes.get(field.name)
            if attr is not None:
                found[field.name] = attr.value
        return cls(**found)


class Federation(Protocol):
    """What carries a run's remote fan-outs to peers and back."""

    def scatter(self, channel: str, to: str, peers: list[str], payloads: list[list[Any]], gates: WireGates,
                label: str = "") -> int:
        """Send ``payloads[i]`` to peer ``peers[i]`` of placement ``to``; return the exchange
        id (``label`` names the work in progress reports)."""
        ...

    def result(self, exchange: int) -> concurrent.futures.Future[Any]:
        """The future :class:`~namu.federated.node.ExchangeResult` of ``exchange``."""
        ...


def current_federation(node: ir.Node) -> Federation:
    """The current run's federation.

    Raises:
        RuntimeError: no run with a federation is in progress.
    """
    federation = _FEDERATION.get()
    if federation is None:
        raise RuntimeError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: namu.{node.op_type} ran outside a federated run "
            "(run the model through namu.Artifact)"
        )
    return federation


@contextlib.contextmanager
def use_federation(factory: Callable[[FederatedRunner], contextlib.AbstractContextManager[Federation]]) -> Iterator[None]:
    """Within the block, federated runs open their federation with ``factory(runner)``
    instead of simulating every peer in this process."""
    token = _FACTORY.set(factory)
    try:
        yield
    finally:
        _FACTORY.reset(token)


def scatter_op(node: ir.Node) -> Callable[..., int]:
    """The callable of a ``namu.Scatter`` node: ``(items, *values) -> exchange id``."""
    channel = node.attributes["channel"].as_string()
    to = node.attributes["to"].as_string()
    label_attr = node.attributes.get("label")
    label = label_attr.as_string() if label_attr is not None else channel
    gates = WireGates.of(node)

    def scatter(items: Any, *values: Any) -> int:
        items = list(items)
        rest = list(values)
        peers = [str(i) for i in items]
        return current_federation(node).scatter(channel, to, peers, [[i, *rest] for i in items], gates, label)

    return scatter


class _Gathered:
    """What a ``namu.Gather`` node makes of its exchange's result."""

    def __init__(self, node: ir.Node) -> None:
        flatten = node.attributes.get("flatten")
        self.flatten = bool(flatten.as_int()) if flatten is not None else False
        self.where = node.metadata_props.get(SPAN_KEY, "?")

    def __call__(self, result: Any) -> list[Any]:
        from namu.federated.node import FederationError

        if result.failure is not None:
            raise FederationError(f"{self.where}: {result.failure}")
        if result.missing:
            logger.info("%s: closed without %s", self.where, ", ".join(f"{p} ({why})" for p, why in result.missing))
        gathered: list[Any] = []
        for outs in result.results:
            if outs is None:
                continue
            if self.flatten:
                gathered.extend(outs[0])
            else:
                gathered.append(outs[0])
        return gathered


def gather_coroutine_fn(node: ir.Node) -> Callable[[int], Coroutine[Any, Any, Any]]:
    """The async op of a ``namu.Gather`` node (the kernel's): ``exchange -> coroutine``.

    The results are the answering peers' first outputs, in item order (concatenated,
    when the fan-out flattened); peers that did not answer are left out and logged.

    Raises (from the coroutine):
        FederationError: fewer than ``min_replies`` peers answered.
    """
    finish = _Gathered(node)

    def call(exchange: int) -> Coroutine[Any, Any, Any]:
        future = current_federation(node).result(exchange)

        async def gather() -> Any:
            return finish(await asyncio.wrap_future(future))

        return gather()

    return call


def gather_op(node: ir.Node) -> Callable[[int], Any]:
    """The blocking callable of a ``namu.Gather`` node (the reference executor's)."""
    finish = _Gathered(node)
    return lambda exchange: finish(current_federation(node).result(exchange).result())


class FederatedRunner:
    """Runs the default partition of a model with handler partitions, in a federation.

    Args:
        local: the default partition's runner.
        handlers: handler placement -> its handlers by channel (``inputs -> outputs``).
        gates: the gates of the model's ``namu.Scatter`` ops, by channel.
        digest: the artifact's digest (peers must have the same one).
    """

    def __init__(self, local: Callable[..., list[Any]], handlers: dict[str, Handlers], gates: dict[str, WireGates],
                 digest: str) -> None:
        self.local = local
        self.handlers = handlers
        self.gates = gates
        self.digest = digest

    def __call__(self, inputs: list[Any], **options: Any) -> list[Any]:
        if _FEDERATION.get() is not None:
            return self.local(inputs, **options)  # a nested run inside a federated one
        factory = _FACTORY.get()
        if factory is None:
            from namu.federated.local import LocalFederation

            factory = LocalFederation.open
        with factory(self) as federation:
            token = _FEDERATION.set(federation)
            try:
                return self.local(inputs, **options)
            finally:
                _FEDERATION.reset(token)

    def strictest(self) -> WireGates:
        """The node-wide gates: the smallest ``max_failures`` and backoffs of all channels."""
        gates = list(self.gates.values()) or [WireGates()]
        return WireGates(
            deadline_s=max(g.deadline_s for g in gates),
            min_replies=max(g.min_replies for g in gates),
            max_failures=min(g.max_failures for g in gates),
            backoff_base_s=min(g.backoff_base_s for g in gates),
            backoff_max_s=min(g.backoff_max_s for g in gates),
        )


class RoundLog(RunHooks):
    """Run hook collecting the rounds of a federated run (``on_event("round", data)``,
    raised when a remote fan-out's exchange closes): ``namu run --json`` prints them.

    Attributes:
        rounds: one dict per closed exchange: ``channel``, ``label`` (the client task),
            ``round``, ``asked``,
            ``answered``, ``missing`` (peer ids), ``elapsed_s``, ``failure``.
    """

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def on_event(self, name: str, data: Mapping[str, Any]) -> None:
        if name == "round":
            with self._lock:
                self.rounds.append(dict(data))


def artifact_digest(model: ir.Model) -> str:
    """``sha256:<hex>`` of the model's deterministic serialization: what every peer of a
    federation must share (the passport check)."""
    from namu.ir.serde import to_proto

    data = to_proto(model).SerializeToString(deterministic=True)
    return "sha256:" + hashlib.sha256(data).hexdigest()
