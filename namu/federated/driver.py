"""What every server-side adapter does around the sans-IO ServerNode.

:class:`ServerDriver` is the base of :class:`~namu.federated.local.LocalFederation` and
:class:`~namu.federated.grpc_wire.GrpcFederation`: it starts exchanges (serving the
replies a checkpointed run already has), completes their futures when the Node closes
them, and journals every reply as it arrives. The adapters add only how envelopes
travel and what the clock is.

**Snapshot and restore.** With ``checkpoint=`` (``--checkpoint``), each reply is
committed to the run's SQLite journal the moment it counts, keyed like a task call:
``("namu.reply:<channel>", item, content digest of the request, occurrence)``. A server
killed in the middle of a round and started again with the same command replays the
run: finished task calls and every reply already received are served from the journal,
and only the peers whose answers were missing are asked again. The Node's own state
(peer health, round numbers) is rebuilt by the replay itself.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from namu.errors import UnhashableValue
from namu.federated.envelope import check_wire_value
from namu.federated.node import Answered, Closed, Event, ServerNode
from namu.runtime.result import current_run

if TYPE_CHECKING:
    from namu.runtime.checkpoint import Journal
    from namu.runtime.hooks import RunHooks
    from namu.runtime.federation import WireGates

__all__ = ["ServerDriver"]

logger = logging.getLogger(__name__)


class ServerDriver:
    """The server Node of one run, with its exchanges, futures and reply journal.

    Args:
        digest: the artifact digest peers must have.
        gates: the node-wide gates (``max_failures``, backoff).
        on_event: called with every Node event (progress displays).

    Attributes:
        node: the server's :class:`~namu.federated.node.ServerNode`.
        run_state: the run that opened the driver (its hooks hear of each round, from
            any thread); its checkpoint journal keeps the replies.
    """

    def __init__(self, digest: str, gates: WireGates, on_event: Callable[[Event], None] | None = None) -> None:
        self.node = ServerNode(digest=digest, max_failures=gates.max_failures, backoff_base_s=gates.backoff_base_s,
                               backoff_max_s=gates.backoff_max_s)
        self.on_event = on_event
        self.run_state = current_run()
        self.journal: Journal | None = self.run_state.journal if self.run_state is not None else None
        self._started: dict[int, tuple[float, int, str]] = {}  # exchange -> (start, items asked, label)
        self._futures: dict[int, concurrent.futures.Future[Any]] = {}
        self._taken: set[int] = set()  # exchanges whose future Gather holds
        self._reply_keys: dict[int, list[bytes]] = {}

    def _start(self, channel: str, peers: list[str], payloads: list[list[Any]], gates: WireGates, now_ns: int,
               label: str = "") -> int:
        """Start an exchange on the Node; items the journal holds are not asked again.

        Raises:
            WireValueError: a payload cannot cross the wire (checked in one process too,
                so a program that runs there runs across processes).
        """
        for i, payload in enumerate(payloads):
            check_wire_value(payload, f"request {i} of {label or channel}")
        keys = self._keys(channel, payloads)
        known: dict[int, Any] = {}
        if keys is not None and self.journal is not None:
            for i, key in enumerate(keys):
                found, value = self.journal.lookup(key)
                if found:
                    known[i] = value
        exchange = self.node.scatter(channel, peers, payloads, now_ns=now_ns, deadline_s=gates.deadline_s,
                                     min_replies=gates.min_replies, known=known)
        self._futures[exchange] = concurrent.futures.Future()
        self._started[exchange] = (time.perf_counter(), len(peers) - len(known), label or channel)
        hooks = self._listening("fanout")
        if hooks is not None:  # the progress bar counts the requests out
            hooks.on_fanout(len(peers) - len(known))
        if keys is not None:
            self._reply_keys[exchange] = keys
        return exchange

    def _keys(self, channel: str, payloads: list[list[Any]]) -> list[bytes] | None:
        if self.journal is None:
            return None
        from namu.runtime.content import content_digest

        try:
            return [self.journal.call_key(f"namu.reply:{channel}", "", channel, content_digest(p)) for p in payloads]
        except UnhashableValue:
            return None  # these replies are not journaled: asked again on resume

    def _handle(self, events: list[Event]) -> None:
        """Complete closed exchanges, journal replies, pass events on."""
        for event in events:
            if isinstance(event, Answered):
                hooks = self._listening("item_done")
                if hooks is not None:  # ... and the answers in
                    hooks.on_item_done()
                keys = self._reply_keys.get(event.exchange)
                if keys is not None and self.journal is not None:
                    self.journal.record(keys[event.item], event.results, task="namu.Gather", span=f"item {event.item}")
            elif isinstance(event, Closed):
                self._report(event.result)
                self._reply_keys.pop(event.result.exchange, None)
                exchange = event.result.exchange
                future = self._futures.get(exchange)
                if future is not None:
                    future.set_result(event.result)
                    if exchange in self._taken:
                        self._taken.discard(exchange)
                        del self._futures[exchange]
            if self.on_event is not None:
                self.on_event(event)

    def _listening(self, event: str) -> RunHooks | None:
        """The run's hooks, when they listen to ``event`` (``"fanout"``, ...), else None."""
        state = self.run_state
        if state is None or state.hooks is None or event not in state.events:
            return None
        return state.hooks

    def _report(self, result: Any) -> None:
        """Tell the run's hooks that a round closed: ``on_event("round", data)``."""
        start, asked, label = self._started.pop(result.exchange, (time.perf_counter(), 0, result.channel))
        hooks = self._listening("event")
        if hooks is None:
            return
        hooks.on_event("round", {
            "channel": result.channel,
            "label": label,
            "round": result.round,
            "asked": asked,
            "answered": len(result.replied),
            "missing": [peer for peer, _ in result.missing],
            "elapsed_s": time.perf_counter() - start,
            "failure": result.failure,
        })

    def result(self, exchange: int) -> concurrent.futures.Future[Any]:
        """The future :class:`~namu.federated.node.ExchangeResult` of ``exchange``
        (``namu.Gather`` takes it once)."""
        future = self._futures[exchange]
        if future.done():
            del self._futures[exchange]
        else:
            self._taken.add(exchange)  # dropped when it closes
        return future
