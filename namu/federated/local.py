"""The in-process wire: a whole federation, server and every client, in one process.

:class:`LocalFederation` is the adapter a federated run uses when nothing else is
installed (``namu run fedavg.py``): a :class:`~namu.federated.node.ServerNode` and one
:class:`~namu.federated.node.ClientNode` per peer the fan-outs name, created on first
use (each says hello, so the passport check and peer health run as across processes).
Envelopes pass as Python objects -- nothing is serialized in one process -- and each
client runs its handler partition when its request arrives, so an exchange has closed
by the time ``namu.Scatter`` returns. That is the simulation mode of Flower
(``flwr.simulation``), without Ray and without a thread per client.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from namu.federated.driver import ServerDriver
from namu.federated.envelope import check_wire_value
from namu.federated.node import ClientNode, Request

if TYPE_CHECKING:
    from namu.runtime.federation import FederatedRunner, Handler, Handlers, WireGates

__all__ = ["LocalFederation", "checked"]


def checked(handler: Handler) -> Handler:
    """``handler``, whose results must be able to cross the wire (else it raises
    :class:`~namu.federated.envelope.WireValueError`, answered as the peer's error)."""

    def run(inputs: list[Any]) -> list[Any]:
        outputs = handler(inputs)
        check_wire_value(outputs, "reply")
        return outputs

    return run


class LocalFederation(ServerDriver):
    """Server and clients of one run, in this process (see the module doc).

    Args:
        handlers: placement -> its handlers by channel (the handler partition's).
        digest: the artifact digest (every simulated peer has it).
        gates: the node-wide gates (``max_failures``, backoff).
    """

    def __init__(self, handlers: dict[str, Handlers], digest: str, gates: WireGates) -> None:
        super().__init__(digest, gates)
        #: placement -> channel -> handler, whose replies must be able to cross the wire
        self.handlers = {place: {channel: checked(h) for channel, h in by_channel.items()}
                         for place, by_channel in handlers.items()}
        self.digest = digest
        #: peer id -> (its node, its placement)
        self.clients: dict[str, tuple[ClientNode, str]] = {}

    @classmethod
    @contextlib.contextmanager
    def open(cls, runner: FederatedRunner) -> Iterator[LocalFederation]:
        """The federation of one run of ``runner`` (a :class:`FederatedRunner` factory)."""
        yield cls(runner.handlers, runner.digest, runner.strictest())

    def scatter(self, channel: str, to: str, peers: list[str], payloads: list[list[Any]], gates: WireGates,
                label: str = "") -> int:
        """Send each payload to its peer, run the peers' handlers, collect the replies."""
        now = time.monotonic_ns()
        for peer in peers:
            if peer not in self.clients:
                client = ClientNode(peer, digest=self.digest, server=self.node.peer_id)
                self.clients[peer] = (client, to)
                self.node.receive(client.hello(), now)
        exchange = self._start(channel, peers, payloads, gates, now, label)
        self._pump()
        return exchange

    def _pump(self) -> None:
        """Deliver envelopes both ways until nothing is left to send."""
        server, clients, handlers = self.node, self.clients, self.handlers
        while True:
            now = time.monotonic_ns()
            outbound, events = server.poll(now)
            self._handle(events)
            if not outbound:
                return
            for envelope in outbound:
                client, placement = clients[envelope.recipient]
                client.receive(envelope, now)
                for event in client.poll(now)[1]:
                    if isinstance(event, Request):
                        client.serve(event.envelope, handlers[placement])
                for reply in client.poll(now)[0]:
                    server.receive(reply, time.monotonic_ns())
