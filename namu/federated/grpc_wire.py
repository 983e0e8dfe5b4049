"""The gRPC wire: a federation across processes, over ``grpcio``.

One bidirectional stream per client, ``/namu.federated.Wire/Exchange``, carries
:mod:`namu.federated.envelope` messages both ways. The protocol is the sans-IO
:class:`~namu.federated.node.ServerNode` / :class:`~namu.federated.node.ClientNode`;
this module only moves their envelopes and gives them the time:

* :class:`GrpcFederation` (``namu federated server``): a gRPC server and one pump thread
  that polls the server Node, routes its envelopes to the peers' streams (a peer not
  connected is undeliverable: the Node re-sends with backoff until the deadline) and
  completes exchanges;
* :func:`run_client` (``namu federated client``): joins, runs its handler partition on
  each request, answers, and reconnects (with backoff) when the server goes away, until
  the server says ``bye``.

The clock is Unix time in nanoseconds (``time.time_ns``), so a request's deadline means
the same on every peer of a machine.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from namu.federated.driver import ServerDriver
from namu.federated.envelope import decode, encode
from namu.federated.local import checked
from namu.federated.node import ClientNode, Envelope, FederationError, PeerDown, PeerUp, Refused, Request

if TYPE_CHECKING:
    from namu.runtime.federation import FederatedRunner, Handlers, WireGates

__all__ = ["METHOD", "GrpcFederation", "run_client"]

logger = logging.getLogger(__name__)

#: the one RPC: a bidirectional stream of envelopes
METHOD = "/namu.federated.Wire/Exchange"
_CLOSE = object()  # ends a peer's outbound stream


def _identity(data: bytes) -> bytes:
    return data


class GrpcFederation(ServerDriver):
    """The server side of a federation over gRPC (see the module doc).

    Args:
        address: ``host:port`` to listen on (port 0: any free port; see :attr:`port`).
        digest: the artifact digest clients must have.
        gates: the node-wide gates (``max_failures``, backoff).
        on_event: called with every Node event (progress displays), on the pump thread.

    Attributes:
        port: the port listened on.
    """

    def __init__(self, address: str, digest: str, gates: WireGates,
                 on_event: Callable[[Any], None] | None = None) -> None:
        super().__init__(digest, gates, on_event)
        self._lock = threading.Condition()
        self._streams: dict[str, queue.SimpleQueue[Any]] = {}
        self._stopping = False
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="namu-wire"),
                                   options=[("grpc.max_receive_message_length", 256 << 20),
                                            ("grpc.max_send_message_length", 256 << 20)])
        handler = grpc.stream_stream_rpc_method_handler(self._exchange, request_deserializer=_identity,
                                                        response_serializer=_identity)
        service, method = METHOD.rsplit("/", 1)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.strip("/"), {method: handler}),))
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        self._pump_thread = threading.Thread(target=self._pump, name="namu-wire-pump", daemon=True)

    @classmethod
    def factory(cls, address: str, on_event: Callable[[Any], None] | None = None,
                on_listen: Callable[[int], None] | None = None) -> Callable[[FederatedRunner], Any]:
        """A federation factory for :func:`~namu.runtime.federation.use_federation`:
        listens on ``address`` for the run, says ``bye`` to every client at its end."""

        @contextlib.contextmanager
        def open_federation(runner: FederatedRunner) -> Iterator[GrpcFederation]:
            federation = cls(address, runner.digest, runner.strictest(), on_event)
            federation.start()
            if on_listen is not None:
                on_listen(federation.port)
            try:
                yield federation
            finally:
                federation.stop()

        return open_federation

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._server.start()
        self._pump_thread.start()

    def stop(self, grace_s: float = 2.0) -> None:
        """Say ``bye`` to every connected client, then stop serving."""
        with self._lock:
            self._stopping = True
            for peer, stream in self._streams.items():
                stream.put(Envelope("bye", self.node.peer_id, peer))
                stream.put(_CLOSE)
            self._lock.notify_all()
        self._server.stop(grace_s).wait()
        self._pump_thread.join(timeout=grace_s)

    # ------------------------------------------------------------------ Federation
    def scatter(self, channel: str, to: str, peers: list[str], payloads: list[list[Any]], gates: WireGates,
                label: str = "") -> int:
        with self._lock:
            exchange = self._start(channel, peers, payloads, gates, time.time_ns(), label)
            self._lock.notify_all()
            return exchange

    def result(self, exchange: int) -> concurrent.futures.Future[Any]:
        with self._lock:
            return super().result(exchange)

    # ------------------------------------------------------------------ the pump
    def _pump(self) -> None:
        with self._lock:
            while not self._stopping:
                now = time.time_ns()
                outbound, events = self.node.poll(now)
                for envelope in outbound:
                    stream = self._streams.get(envelope.recipient)
                    if stream is None:
                        self.node.undeliverable(envelope, now)
                    else:
                        stream.put(envelope)
                self._handle(events)
                for event in events:
                    if isinstance(event, Refused):
                        logger.warning("refused peer %s: %s", event.peer, event.reason)
                    elif isinstance(event, (PeerDown, PeerUp)):
                        logger.info("%s", event)
                if outbound or events:
                    continue  # routing may have made more to do (undeliverable -> backoff)
                wake = self.node.next_wakeup_ns()
                self._lock.wait(None if wake is None else max(0.0, (wake - time.time_ns()) / 1e9) + 0.001)

    def _receive(self, envelope: Envelope) -> None:
        with self._lock:
            self.node.receive(envelope, time.time_ns())
            self._lock.notify_all()

    # ------------------------------------------------------------------ one client's stream
    def _exchange(self, request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            first = decode(next(request_iterator))
        except (StopIteration, Exception):  # noqa: BLE001 - a peer that does not speak the protocol
            return
        if first.kind != "hello":
            return
        peer = first.sender
        outbound: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._lock:
            old = self._streams.get(peer)
            if old is not None:
                old.put(_CLOSE)  # a reconnect replaces the old stream
            self._streams[peer] = outbound
        reader = threading.Thread(target=self._read, args=(peer, request_iterator, outbound), daemon=True,
                                  name=f"namu-wire-{peer}")
        self._receive(first)
        reader.start()
        try:
            while True:
                envelope = outbound.get()
                if envelope is _CLOSE:
                    return
                yield encode(envelope)
                if envelope.kind == "refused":
                    return
        finally:
            with self._lock:
                if self._streams.get(peer) is outbound:
                    del self._streams[peer]

    def _read(self, peer: str, request_iterator: Iterator[bytes], outbound: queue.SimpleQueue[Any]) -> None:
        try:
            for data in request_iterator:
                self._receive(decode(data))
        except Exception:  # noqa: BLE001 - the stream broke: the peer went away
            logger.info("peer %s disconnected", peer)
        outbound.put(_CLOSE)


def run_client(
    address: str,
    peer_id: str,
    handlers: Handlers,
    digest: str,
    *,
    retry_for_s: float = 60.0,
    on_request: Callable[[Envelope], None] | None = None,
) -> int:
    """Serve one peer's requests until the server says ``bye``.

    Args:
        address: the server's ``host:port``.
        peer_id: this peer's id (the fan-out items that name it).
        handlers: by channel, what runs one request: ``[item, *values] -> outputs``.
        digest: this peer's artifact digest (the server refuses another).
        retry_for_s: how long to keep reconnecting while the server is away (seconds).
        on_request: called with each request before it runs (progress, tests).

    Returns:
        How many requests this peer answered.

    Raises:
        FederationError: the server refused this peer (another artifact), or stayed away
            longer than ``retry_for_s``.
    """
    node = ClientNode(peer_id, digest=digest)
    checked_handlers = {channel: checked(h) for channel, h in handlers.items()}
    answered = 0
    away_since: float | None = None
    delay = 0.05
    while not node.done:
        outbound: queue.SimpleQueue[Any] = queue.SimpleQueue()
        outbound.put(node.hello())

        def requests() -> Iterator[bytes]:
            while True:
                envelope = outbound.get()
                if envelope is _CLOSE:
                    return
                yield encode(envelope)

        channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 << 20),
                                                          ("grpc.max_send_message_length", 256 << 20)])
        call = channel.stream_stream(METHOD, request_serializer=_identity, response_deserializer=_identity)
        try:
            for data in call(requests()):
                away_since, delay = None, 0.05
                node.receive(decode(data), time.time_ns())
                for event in node.poll(time.time_ns())[1]:
                    if isinstance(event, Refused):
                        raise FederationError(f"the server refused peer {peer_id}: {event.reason}")
                    if isinstance(event, Request):
                        if on_request is not None:
                            on_request(event.envelope)
                        node.serve(event.envelope, checked_handlers)
                        answered += 1
                for envelope in node.poll(time.time_ns())[0]:
                    outbound.put(envelope)
                if node.done:
                    break
        except grpc.RpcError as exc:
            logger.info("peer %s: connection lost (%s)", peer_id, exc.code() if hasattr(exc, "code") else exc)
        finally:
            outbound.put(_CLOSE)
            channel.close()
        if node.done:
            break
        now = time.monotonic()
        away_since = away_since if away_since is not None else now
        if now - away_since > retry_for_s:
            raise FederationError(f"peer {peer_id}: the server at {address} was away for over {retry_for_s:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    return answered

