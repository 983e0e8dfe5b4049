"""The federated Node: the protocol state of one peer, with no I/O (sans-IO).

A Node never reads a socket, a clock or a thread. An adapter (the in-process bus of
:mod:`namu.federated.local`, gRPC in :mod:`namu.federated.grpc_wire`) hands it inbound
:class:`Envelope` s with :meth:`receive` and the current time, and takes from
:meth:`poll` the envelopes to send and the :class:`Event` s that happened. So the whole
protocol -- requests, replies, deduplication, peer health, backoff and deadlines -- is
tested with a fake clock, and a new transport (Ray, a message queue) is a new adapter,
not a new Node. (The sans-IO style of h11 and hyper-h2; bytesandbrains' Node is driven
the same way, by ``poll()``.)

The server side (:class:`ServerNode`) sends one request per item of a remote fan-out
(``namu.Scatter``) to the peer the item names, and closes the exchange
(``namu.Gather``) once every asked peer replied, or at its deadline with the replies it
has when at least ``min_replies`` came, else as a failure naming the missing peers: it
never waits forever. The client side (:class:`ClientNode`) turns requests into
:class:`Request` events, answers each request once, and replays its answer to a
repeated request.

Gates, each a policy of the wire ops set by ``insert-resilience-gates``:

* **dedup**: one reply per peer per exchange counts; a second is dropped (and
  counted), as is a reply to an exchange that is closed;
* **peer health**: a peer that misses ``max_failures`` deadlines or answers with an
  error that many times in a row is marked down and is not asked until it speaks again
  (a hello or any reply);
* **backoff**: a request the transport could not deliver (:meth:`ServerNode.undeliverable`)
  is sent again after ``min(backoff_max_s, backoff_base_s * 2**k)``, until the exchange's
  deadline;
* **deadlines**: every exchange has one (``deadline_s``; ``namu.Scatter``'s default is
  finite).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "Answered",
    "ClientNode",
    "Closed",
    "Envelope",
    "Event",
    "ExchangeResult",
    "FederationError",
    "PeerDown",
    "PeerUp",
    "Refused",
    "Request",
    "ServerNode",
    "WIRE_VERSION",
]

#: the envelope format's version; fields are only ever added, so older peers still parse it
WIRE_VERSION = 1

Kind = Literal["hello", "welcome", "request", "reply", "error", "refused", "bye"]


class FederationError(RuntimeError):
    """A remote fan-out failed: too few peers answered by the deadline (the message names
    the missing ones), or a peer's artifact differs from the server's."""


@dataclasses.dataclass(slots=True)
class Envelope:
    """One message between peers; the gRPC adapter carries it as the versioned protobuf
    message of :mod:`namu.federated.envelope`.

    Attributes:
        kind: ``hello`` (a peer joins, with its artifact ``digest``), ``welcome`` (the
            server accepts it), ``refused`` (it does not: ``payload`` says why),
            ``request``, ``reply``, ``error`` (a request failed: ``payload`` is the
            message) or ``bye`` (the run is over).
        sender: the sending peer's id.
        recipient: the receiving peer's id.
        channel: the remote fan-out's channel (``namu.Scatter``'s attribute).
        round: how many exchanges the channel had before this one, plus one.
        correlation: the exchange id; a reply carries its request's.
        item: the item's index in the fan-out; a reply carries its request's.
        deadline_ns: when the exchange closes, in the server clock's nanoseconds (0: none).
        payload: a request's ``[item, *values]``, a reply's results, an error's message.
        digest: the sender's artifact digest (in ``hello``).
        version: :data:`WIRE_VERSION` of the sender.
    """

    kind: Kind
    sender: str
    recipient: str
    channel: str = ""
    round: int = 0
    correlation: int = 0
    item: int = 0
    deadline_ns: int = 0
    payload: Any = None
    digest: str = ""
    version: int = WIRE_VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class ExchangeResult:
    """How one exchange ended.

    Attributes:
        exchange: its id.
        results: per asked item, in item order, the peer's results, or None for a peer that
            did not answer (skipped, missed the deadline, or failed).
        replied: the peers whose answer counts, in item order.
        missing: the peers that did not answer, in item order, with why
            (``"down"``, ``"deadline"`` or the error message).
        failure: None if the exchange closed, else why it failed.
        channel: the fan-out's channel.
        round: the exchange's number on its channel (1, 2, ...).
    """

    exchange: int
    results: list[Any]
    replied: list[str]
    missing: list[tuple[str, str]]
    failure: str | None = None
    channel: str = ""
    round: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Closed:
    """Event: an exchange closed (or failed; see ``result.failure``)."""

    result: ExchangeResult


@dataclasses.dataclass(frozen=True, slots=True)
class Answered:
    """Event: ``peer`` answered item ``item`` of ``exchange`` with ``results`` (it counts)."""

    exchange: int
    item: int
    peer: str
    results: Any


@dataclasses.dataclass(frozen=True, slots=True)
class PeerDown:
    """Event: ``peer`` failed ``failures`` times in a row and is not asked until it speaks."""

    peer: str
    failures: int


@dataclasses.dataclass(frozen=True, slots=True)
class PeerUp:
    """Event: ``peer`` joined, or spoke again after being marked down."""

    peer: str


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """Event: ``peer`` was refused (server side) or refused us (client side): ``reason``."""

    peer: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """Event (client side): run the handler on ``envelope.payload`` and :meth:`ClientNode.reply`."""

    envelope: Envelope


Event = Answered | Closed | PeerDown | PeerUp | Refused | Request


@dataclasses.dataclass(slots=True)
class _Exchange:
    id: int
    channel: str
    round: int
    peers: list[str]
    deadline_ns: int
    min_replies: int
    results: dict[int, Any] = dataclasses.field(default_factory=dict)  # item index -> results
    missing: dict[int, str] = dataclasses.field(default_factory=dict)  # item index -> why


def _seconds_ns(seconds: float) -> int:
    return int(seconds * 1e9)


class ServerNode:
    """The server's side of the protocol (see the module doc).

    Args:
        peer_id: this peer's id (``"server"``).
        digest: the artifact digest peers must match (checked on ``hello``; "" checks nothing).
        max_failures: failures in a row after which a peer is marked down (>= 1).
        backoff_base_s: first delay before re-sending an undeliverable request (seconds).
        backoff_max_s: longest such delay (seconds).

    Raises:
        ValueError: ``max_failures`` < 1 or a negative backoff.
    """

    def __init__(
        self,
        peer_id: str = "server",
        *,
        digest: str = "",
        max_failures: int = 3,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 2.0,
    ) -> None:
        if max_failures < 1 or backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("max_failures must be >= 1 and backoff delays >= 0")
        self.peer_id = peer_id
        self.digest = digest
        self.max_failures = max_failures
        self.backoff_base_ns = _seconds_ns(backoff_base_s)
        self.backoff_max_ns = _seconds_ns(backoff_max_s)
        #: peers that said hello (or replied), in arrival order
        self.peers: dict[str, None] = {}
        #: peer -> failures in a row
        self.failures: dict[str, int] = {}
        #: peers marked down
        self.down: set[str] = set()
        #: replies dropped as duplicates or late
        self.duplicates = 0
        self._exchanges: dict[int, _Exchange] = {}
        self._rounds: dict[str, int] = {}
        self._next_id = 1
        self._outbox: list[Envelope] = []
        self._events: list[Event] = []
        self._retries: list[tuple[int, int, Envelope]] = []  # (due_ns, seq, envelope) heap
        self._attempts: dict[tuple[int, str], int] = {}
        self._seq = 0

    # ------------------------------------------------------------------ requests
    def scatter(
        self,
        channel: str,
        peers: Sequence[str],
        payloads: Sequence[Any],
        *,
        now_ns: int,
        deadline_s: float,
        min_replies: int,
        known: Mapping[int, Any] | None = None,
    ) -> int:
        """Start an exchange: one request per item, ``payloads[i]`` to ``peers[i]``.

        Peers marked down are not asked (they count as missing, ``"down"``). The
        exchange closes when every asked peer answered, else at ``now_ns + deadline_s``.

        Args:
            channel: the fan-out's channel.
            peers: the peer of each item (an id may repeat: that peer gets each item).
            payloads: each item's request payload.
            now_ns: the current time (nanoseconds of the adapter's clock).
            deadline_s: how long the exchange may take (seconds, > 0).
            min_replies: answers needed to close at the deadline (>= 0; capped at the
                number of items).
            known: item index -> results already known (a restarted server's journal):
                those items are not asked again.

        Returns:
            The exchange id, for :meth:`poll`'s :class:`Closed` event.

        Raises:
            ValueError: ``peers`` and ``payloads`` differ in length, or ``deadline_s`` <= 0.
        """
        if len(peers) != len(payloads):
            raise ValueError("one payload per peer")
        if deadline_s <= 0:
            raise ValueError("deadline_s must be > 0")
        exchange_id = self._next_id
        self._next_id += 1
        round_ = self._rounds[channel] = self._rounds.get(channel, 0) + 1
        exchange = _Exchange(exchange_id, channel, round_, list(peers), now_ns + _seconds_ns(deadline_s),
                             min(min_replies, len(peers)))
        self._exchanges[exchange_id] = exchange
        for i, (peer, payload) in enumerate(zip(peers, payloads)):
            if known and i in known:
                exchange.results[i] = known[i]
                continue
            if peer in self.down:
                exchange.missing[i] = "down"
                continue
            self._outbox.append(Envelope("request", self.peer_id, peer, channel, round_, exchange_id, i,
                                         exchange.deadline_ns, payload))
        self._maybe_close(exchange)
        return exchange_id

    def undeliverable(self, envelope: Envelope, now_ns: int) -> None:
        """The adapter could not send ``envelope``: send it again after a backoff, while
        its exchange is open."""
        if envelope.kind != "request" or envelope.correlation not in self._exchanges:
            return
        key = (envelope.correlation, envelope.item)
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        delay = min(self.backoff_max_ns, self.backoff_base_ns * (2 ** (attempt - 1)))
        self._seq += 1
        heapq.heappush(self._retries, (now_ns + delay, self._seq, envelope))

    # ------------------------------------------------------------------ inbound
    def receive(self, envelope: Envelope, now_ns: int) -> None:
        """Take one inbound envelope."""
        sender = envelope.sender
        if envelope.kind == "hello":
            if self.digest and envelope.digest != self.digest:
                reason = (f"artifact digest {envelope.digest[:16] or '(none)'}... differs from the server's "
                          f"{self.digest[:16]}...: install the server's artifact")
                self._outbox.append(Envelope("refused", self.peer_id, sender, payload=reason))
                self._events.append(Refused(sender, reason))
                return
            self._outbox.append(Envelope("welcome", self.peer_id, sender, digest=self.digest))
            self._heard(sender)
            return
        if envelope.kind not in ("reply", "error"):
            return
        exchange = self._exchanges.get(envelope.correlation)
        if exchange is not None and now_ns >= exchange.deadline_ns:
            self._close(exchange, at_deadline=True)  # the deadline passed before this reply
            exchange = None
        item = envelope.item
        if exchange is None or not 0 <= item < len(exchange.peers) or exchange.peers[item] != sender:
            self.duplicates += 1  # late (the exchange closed) or never asked
            return
        self._heard(sender)
        if item in exchange.results or item in exchange.missing:
            self.duplicates += 1  # dedup: one answer per peer per item
            return
        if envelope.kind == "reply":
            exchange.results[item] = envelope.payload
            self._events.append(Answered(exchange.id, item, sender, envelope.payload))
        else:
            exchange.missing[item] = str(envelope.payload)
            self._failed(sender)
        self._maybe_close(exchange)

    def _heard(self, peer: str) -> None:
        new = peer not in self.peers
        self.peers.setdefault(peer, None)
        self.failures[peer] = 0
        if new or peer in self.down:
            self.down.discard(peer)
            self._events.append(PeerUp(peer))

    def _failed(self, peer: str) -> None:
        count = self.failures[peer] = self.failures.get(peer, 0) + 1
        if count >= self.max_failures and peer not in self.down:
            self.down.add(peer)
            self._events.append(PeerDown(peer, count))

    # ------------------------------------------------------------------ time
    def poll(self, now_ns: int) -> tuple[list[Envelope], list[Event]]:
        """Everything to send, and everything that happened, up to ``now_ns``: re-sends
        whose backoff passed, exchanges whose deadline passed."""
        while self._retries and self._retries[0][0] <= now_ns:
            _, _, envelope = heapq.heappop(self._retries)
            exchange = self._exchanges.get(envelope.correlation)
            if exchange is not None and now_ns < exchange.deadline_ns:
                self._outbox.append(envelope)
        for exchange in list(self._exchanges.values()):
            if now_ns >= exchange.deadline_ns:
                self._close(exchange, at_deadline=True)
        out, events = self._outbox, self._events
        self._outbox, self._events = [], []
        return out, events

    def next_wakeup_ns(self) -> int | None:
        """When :meth:`poll` has something to do next without new input (a deadline or a
        re-send), or None."""
        times = [e.deadline_ns for e in self._exchanges.values()]
        if self._retries:
            times.append(self._retries[0][0])
        return min(times) if times else None

    def open_exchanges(self) -> int:
        """How many exchanges are still open."""
        return len(self._exchanges)

    def _maybe_close(self, exchange: _Exchange) -> None:
        if len(exchange.results) + len(exchange.missing) == len(exchange.peers):
            self._close(exchange, at_deadline=False)

    def _close(self, exchange: _Exchange, *, at_deadline: bool) -> None:
        del self._exchanges[exchange.id]
        for key in [k for k in self._attempts if k[0] == exchange.id]:
            del self._attempts[key]
        for i, peer in enumerate(exchange.peers):
            if i not in exchange.results and i not in exchange.missing:
                exchange.missing[i] = "deadline"
                self._failed(peer)
        replied = [exchange.peers[i] for i in sorted(exchange.results)]
        missing = [(exchange.peers[i], exchange.missing[i]) for i in sorted(exchange.missing)]
        results = [exchange.results.get(i) for i in range(len(exchange.peers))]
        failure = None
        if len(replied) < exchange.min_replies:
            named = ", ".join(f"{peer} ({why})" for peer, why in missing)
            failure = (f"round {exchange.round} of {exchange.channel!r}: {len(replied)} of {len(exchange.peers)} "
                       f"peers answered{' by the deadline' if at_deadline else ''}, {exchange.min_replies} needed "
                       f"(min_replies); missing: {named}")
        self._events.append(Closed(ExchangeResult(exchange.id, results, replied, missing, failure,
                                                  exchange.channel, exchange.round)))

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """The Node's state as plain data (JSON-able but for payloads): enough for
        :meth:`restore` to resume open exchanges with the replies they already have."""
        return {
            "next_id": self._next_id,
            "rounds": dict(self._rounds),
            "failures": dict(self.failures),
            "down": sorted(self.down),
            "exchanges": [dataclasses.asdict(e) for e in self._exchanges.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`snapshot`'s output (a restarted server)."""
        self._next_id = state["next_id"]
        self._rounds = dict(state["rounds"])
        self.failures = dict(state["failures"])
        self.down = set(state["down"])
        self._exchanges = {}
        for raw in state["exchanges"]:
            exchange = _Exchange(**raw)
            exchange.results = {int(k): v for k, v in exchange.results.items()}
            exchange.missing = {int(k): v for k, v in exchange.missing.items()}
            self._exchanges[exchange.id] = exchange


class ClientNode:
    """A client's side of the protocol: hello, requests in, one reply per request.

    Args:
        peer_id: this peer's id (what the server's fan-out items name).
        digest: this peer's artifact digest, sent in ``hello``.
        server: the server's peer id.
    """

    def __init__(self, peer_id: str, *, digest: str = "", server: str = "server") -> None:
        self.peer_id = peer_id
        self.digest = digest
        self.server = server
        #: whether the server welcomed us
        self.welcomed = False
        #: why the server refused us, if it did
        self.refused: str | None = None
        #: whether the server said the run is over
        self.done = False
        self._outbox: list[Envelope] = []
        self._events: list[Event] = []
        self._answers: dict[tuple[int, int], Envelope | None] = {}  # (exchange, item) -> reply (None: working)

    def hello(self) -> Envelope:
        """The envelope that joins the federation (send it on every (re)connect)."""
        return Envelope("hello", self.peer_id, self.server, digest=self.digest)

    def receive(self, envelope: Envelope, now_ns: int) -> None:
        """Take one inbound envelope."""
        kind = envelope.kind
        if kind == "welcome":
            self.welcomed = True
        elif kind == "refused":
            self.refused = str(envelope.payload)
            self._events.append(Refused(envelope.sender, self.refused))
        elif kind == "bye":
            self.done = True
        elif kind == "request":
            key = (envelope.correlation, envelope.item)
            if key in self._answers:  # dedup: a repeated request is answered once
                answer = self._answers[key]
                if answer is not None:
                    self._outbox.append(answer)
                return
            self._answers[key] = None
            self._events.append(Request(envelope))

    def reply(self, request: Envelope, results: Any) -> None:
        """Answer ``request`` with ``results`` (sent on the next :meth:`poll`)."""
        self._answer(request, "reply", results)

    def fail(self, request: Envelope, message: str) -> None:
        """Answer ``request`` with an error ``message`` (the handler raised)."""
        self._answer(request, "error", message)

    def serve(self, request: Envelope, handlers: Mapping[str, Callable[[list[Any]], Any]]) -> None:
        """Run the handler of ``request``'s channel (``handlers``: the adapter's, from the
        handler partition) on its payload and answer with its outputs, or with the error
        it raised (also when no handler serves the channel)."""
        from namu.errors import TaskError, describe_exception

        handler = handlers.get(request.channel)
        if handler is None:
            self.fail(request, f"peer {self.peer_id} has no handler for channel {request.channel!r} "
                               f"(it serves {', '.join(sorted(handlers)) or 'none'}): install the server's artifact")
            return
        try:
            outputs = handler(list(request.payload))
        except Exception as exc:  # noqa: BLE001 - the server sees it as this peer's error
            cause = exc.__cause__ if isinstance(exc, TaskError) and exc.__cause__ is not None else exc
            self.fail(request, describe_exception(cause))
        else:
            self.reply(request, outputs)

    def _answer(self, request: Envelope, kind: Kind, payload: Any) -> None:
        answer = Envelope(kind, self.peer_id, request.sender, request.channel, request.round,
                          request.correlation, request.item, request.deadline_ns, payload)
        if len(self._answers) > 4096:  # keep the recent answers only
            for key in list(self._answers)[:2048]:
                del self._answers[key]
        self._answers[(request.correlation, request.item)] = answer
        self._outbox.append(answer)

    def poll(self, now_ns: int) -> tuple[list[Envelope], list[Event]]:
        """Everything to send and everything that happened since the last poll."""
        out, events = self._outbox, self._events
        self._outbox, self._events = [], []
        return out, events
