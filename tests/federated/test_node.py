"""The sans-IO federated Node, driven by hand with a fake clock: requests, replies,
dedup, deadlines with min_replies, peer health, backoff, the passport check, snapshot."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from namu.federated.envelope import WireValueError, check_wire_value, decode, encode
from namu.federated.node import (
    ClientNode,
    Closed,
    Envelope,
    PeerDown,
    PeerUp,
    Refused,
    Request,
    ServerNode,
)

S = 1_000_000_000  # one second in ns


def _closed(events: list) -> list:
    return [e.result for e in events if isinstance(e, Closed)]


def _join(server: ServerNode, *peers: str, now: int = 0) -> dict[str, ClientNode]:
    clients = {p: ClientNode(p, digest=server.digest) for p in peers}
    for client in clients.values():
        server.receive(client.hello(), now)
    server.poll(now)  # the welcomes
    return clients


def _deliver(server: ServerNode, clients: dict[str, ClientNode], now: int, answer=lambda payload: [payload[0] * 10]) -> list:
    """Carry the server's requests to the clients, have them answer, carry the replies back."""
    out, events = server.poll(now)
    for envelope in out:
        client = clients.get(envelope.recipient)
        if client is None:
            continue
        client.receive(envelope, now)
        for event in client.poll(now)[1]:
            if isinstance(event, Request):
                client.serve(event.envelope, {event.envelope.channel: answer})
        for reply in client.poll(now)[0]:
            server.receive(reply, now)
    return events + server.poll(now)[1]


def test_an_exchange_closes_when_every_peer_answered_with_results_in_item_order() -> None:
    server = ServerNode(digest="d")
    clients = _join(server, "a", "b", "c")
    exchange = server.scatter("ch", ["c", "a", "b"], [[3], [1], [2]], now_ns=0, deadline_s=10, min_replies=3)
    [result] = _closed(_deliver(server, clients, 0))
    assert result.exchange == exchange
    assert result.results == [[30], [10], [20]]
    assert result.replied == ["c", "a", "b"] and result.missing == [] and result.failure is None
    assert server.open_exchanges() == 0


def test_a_round_closes_at_its_deadline_with_the_answers_it_has() -> None:
    server = ServerNode()
    clients = _join(server, "a", "b")
    server.scatter("ch", ["a", "b", "c"], [[1], [2], [3]], now_ns=0, deadline_s=5, min_replies=2)
    assert _closed(_deliver(server, clients, 1 * S)) == []  # c never joined: still open
    assert server.next_wakeup_ns() == 5 * S
    [result] = _closed(server.poll(5 * S)[1])
    assert result.failure is None
    assert result.results == [[10], [20], None]
    assert result.missing == [("c", "deadline")]


def test_too_few_answers_by_the_deadline_fail_naming_the_missing_peers() -> None:
    server = ServerNode()
    clients = _join(server, "a")
    server.scatter("fit@client", ["a", "b", "c"], [[1], [2], [3]], now_ns=0, deadline_s=5, min_replies=2)
    _deliver(server, clients, 0)
    [result] = _closed(server.poll(6 * S)[1])
    assert result.failure is not None
    assert "1 of 3 peers answered by the deadline, 2 needed" in result.failure
    assert "b (deadline), c (deadline)" in result.failure


def test_one_reply_per_peer_per_item_counts_and_late_replies_are_dropped() -> None:
    server = ServerNode()
    _join(server, "a", "b")
    exchange = server.scatter("ch", ["a", "b"], [[1], [2]], now_ns=0, deadline_s=5, min_replies=1)
    server.poll(0)
    first = Envelope("reply", "a", "server", "ch", 1, exchange, 0, payload=["first"])
    again = Envelope("reply", "a", "server", "ch", 1, exchange, 0, payload=["second"])
    impostor = Envelope("reply", "a", "server", "ch", 1, exchange, 1, payload=["not a's item"])
    for envelope in (first, again, impostor):
        server.receive(envelope, 1)
    assert server.duplicates == 2
    server.receive(Envelope("reply", "b", "server", "ch", 1, exchange, 1, payload=["b"]), 2)
    [result] = _closed(server.poll(2)[1])
    assert result.results == [["first"], ["b"]]
    server.receive(Envelope("reply", "b", "server", "ch", 1, exchange, 1, payload=["late"]), 3)
    assert server.duplicates == 3


def test_a_client_answers_a_repeated_request_once_and_replays_its_answer() -> None:
    client = ClientNode("a")
    request = Envelope("request", "server", "a", "ch", 1, 7, 0, payload=[1])
    client.receive(request, 0)
    [event] = client.poll(0)[1]
    calls = []
    client.serve(event.envelope, {"ch": lambda payload: calls.append(payload) or ["ok"]})
    [reply] = client.poll(0)[0]
    client.receive(request, 1)  # the server re-sent it
    out, events = client.poll(1)
    assert events == [] and out == [reply] and calls == [[1]]


def test_a_peer_that_keeps_failing_is_marked_down_skipped_then_up_when_it_speaks() -> None:
    server = ServerNode(max_failures=2)
    clients = _join(server, "a", "b")
    for round_ in range(2):  # b fails twice in a row
        server.scatter("ch", ["a", "b"], [[1], [2]], now_ns=round_ * 10 * S, deadline_s=5, min_replies=1)
        _deliver(server, {"a": clients["a"]}, round_ * 10 * S)
        events = server.poll(round_ * 10 * S + 6 * S)[1]
    assert PeerDown("b", 2) in events and server.down == {"b"}
    server.scatter("ch", ["a", "b"], [[1], [2]], now_ns=30 * S, deadline_s=5, min_replies=1)
    out, _ = server.poll(30 * S)
    assert [e.recipient for e in out] == ["a"]  # b is not asked
    clients["a"].receive(out[0], 30 * S)
    clients["a"].serve(clients["a"].poll(30 * S)[1][0].envelope, {"ch": lambda p: ["a"]})
    server.receive(clients["a"].poll(30 * S)[0][0], 30 * S)
    [result] = _closed(server.poll(30 * S)[1])
    assert result.missing == [("b", "down")]
    server.receive(clients["b"].hello(), 40 * S)
    assert PeerUp("b") in server.poll(40 * S)[1] and server.down == set()


def test_an_error_reply_counts_as_a_failure_and_names_the_error() -> None:
    server = ServerNode()
    clients = _join(server, "a")

    def broken(payload: list) -> list:
        raise ValueError("no data on this peer")

    server.scatter("ch", ["a"], [[1]], now_ns=0, deadline_s=5, min_replies=0)
    [result] = _closed(_deliver(server, clients, 0, broken))
    assert result.missing == [("a", "ValueError: no data on this peer")]
    assert server.failures["a"] == 1


def test_an_undeliverable_request_is_sent_again_with_exponential_backoff_until_the_deadline() -> None:
    server = ServerNode(backoff_base_s=1, backoff_max_s=2)
    server.scatter("ch", ["a"], [[1]], now_ns=0, deadline_s=6, min_replies=1)
    [request] = server.poll(0)[0]
    sends = []
    now = 0
    for _ in range(6):
        server.undeliverable(request, now)
        now = server.next_wakeup_ns()
        out, _ = server.poll(now)
        if not out:
            break
        sends.append(now)
        request = out[0]
    assert sends == [1 * S, 3 * S, 5 * S]  # delays 1, 2, 2 (capped); the deadline at 6 stops it


def test_a_client_with_another_artifact_is_refused() -> None:
    server = ServerNode(digest="sha256:aaaa")
    client = ClientNode("a", digest="sha256:bbbb")
    server.receive(client.hello(), 0)
    out, events = server.poll(0)
    assert isinstance(events[0], Refused) and "differs from the server's" in events[0].reason
    client.receive(out[0], 0)
    assert client.refused is not None and "install the server's artifact" in client.refused
    assert "a" not in server.peers


def test_a_snapshot_restores_an_open_round_with_the_answers_it_already_has() -> None:
    server = ServerNode()
    clients = _join(server, "a", "b")
    server.scatter("ch", ["a", "b"], [[1], [2]], now_ns=0, deadline_s=5, min_replies=2)
    out, _ = server.poll(0)
    clients["a"].receive(out[0], 0)
    clients["a"].serve(clients["a"].poll(0)[1][0].envelope, {"ch": lambda p: ["a's update"]})
    server.receive(clients["a"].poll(0)[0][0], 0)
    state = server.snapshot()

    restarted = ServerNode()
    restarted.restore(state)
    assert restarted.open_exchanges() == 1
    reply = Envelope("reply", "b", "server", "ch", 1, out[1].correlation, 1, payload=["b's update"])
    restarted.receive(reply, 1)
    [result] = _closed(restarted.poll(1)[1])
    assert result.results == [["a's update"], ["b's update"]]


_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
    st.builds(lambda xs: np.asarray(xs, dtype=np.float64), st.lists(st.floats(allow_nan=False), max_size=5)),
)
_PAYLOAD = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.text(max_size=5), inner, max_size=3)
), max_leaves=12)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(_PAYLOAD, st.integers(0, 2**63 - 1), st.text(max_size=8))
def test_every_payload_survives_the_protobuf_envelope_exactly(payload, correlation: int, peer: str) -> None:
    envelope = Envelope("reply", peer, "server", "fit@client", 3, correlation, 2, 17, payload)
    check_wire_value(payload)  # the one-process check agrees with the encoder
    back = decode(encode(envelope))
    assert _same(back.payload, payload)
    assert (back.kind, back.sender, back.round, back.correlation, back.item, back.deadline_ns) == (
        "reply", peer, 3, correlation, 2, 17)


@pytest.mark.parametrize("bad, where", [
    ([1, {2}], r"payload\[1\]: a set"),
    ({1: 2}, "payload: a dict key of type int"),
    ([np.ones(2), {"a": (object(),)}], r"payload\[1\]\['a'\]\[0\]: an object cannot cross"),
    (np.array([object()]), "payload: an object array"),
])
def test_values_that_cannot_cross_the_wire_are_refused_by_name(bad, where: str) -> None:
    with pytest.raises(WireValueError, match=where):
        encode(Envelope("reply", "a", "server", payload=bad))
    with pytest.raises(WireValueError, match=where):
        check_wire_value(bad)
