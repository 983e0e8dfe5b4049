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

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from namu.federated.node import ClientNode, Closed, Request, ServerNode

if TYPE_CHECKING:
    from namu.runtime.federation import FederatedRunner, Handler, WireGates

__all__ = ["LocalFederation"]


class LocalFederation:
    """Server and clients of one run, in this process (see the module doc).

    Args:
        handlers: placement -> handler partition runner.
        digest: the artifact digest (every simulated peer has it).
        gates: the node-wide gates (``max_failures``, backoff).
    """

    def __init__(self, handlers: dict[str, Handler], digest: str, gates: WireGates) -> None:
        self.handlers = handlers
        self.digest = digest
        self.server = ServerNode(digest=digest, max_failures=gates.max_failures,
                                 backoff_base_s=gates.backoff_base_s, backoff_max_s=gates.backoff_max_s)
        #: peer id -> (its node, its placement)
        self.clients: dict[str, tuple[ClientNode, str]] = {}
        self._futures: dict[int, concurrent.futures.Future[Any]] = {}

    @classmethod
    @contextlib.contextmanager
    def open(cls, runner: FederatedRunner) -> Iterator[LocalFederation]:
        """The federation of one run of ``runner`` (a :class:`FederatedRunner` factory)."""
        yield cls(runner.handlers, runner.digest, runner.strictest())

    def scatter(self, channel: str, to: str, peers: list[str], payloads: list[list[Any]], gates: WireGates) -> int:
        """Send each payload to its peer, run the peers' handlers, collect the replies."""
        now = time.monotonic_ns()
        for peer in peers:
            if peer not in self.clients:
                self._join(peer, to, now)
        exchange = self.server.scatter(channel, peers, payloads, now_ns=now, deadline_s=gates.deadline_s,
                                       min_replies=gates.min_replies)
        self._futures[exchange] = concurrent.futures.Future()
        self._pump()
        return exchange

    def result(self, exchange: int) -> concurrent.futures.Future[Any]:
        """The future result of ``exchange`` (already done: a local exchange closes in
        :meth:`scatter`)."""
        return self._futures.pop(exchange)

    def _join(self, peer: str, placement: str, now: int) -> None:
        client = ClientNode(peer, digest=self.digest, server=self.server.peer_id)
        self.clients[peer] = (client, placement)
        self.server.receive(client.hello(), now)

    def _pump(self) -> None:
        """Deliver envelopes both ways until nothing is left to send."""
        server, clients, handlers = self.server, self.clients, self.handlers
        while True:
            now = time.monotonic_ns()
            outbound, events = server.poll(now)
            for event in events:
                if isinstance(event, Closed):
                    self._futures[event.result.exchange].set_result(event.result)
            if not outbound:
                return
            for envelope in outbound:
                client, placement = clients[envelope.recipient]
                client.receive(envelope, now)
                replies, requests = client.poll(now)
                for request in requests:
                    if isinstance(request, Request):
                        client.serve(request.envelope, handlers[placement])
                for reply in (*replies, *client.poll(now)[0]):
                    server.receive(reply, time.monotonic_ns())

