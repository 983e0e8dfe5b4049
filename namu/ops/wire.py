"""Wire ops, the only way partitions exchange values: ``namu.Send`` and ``namu.Recv``
(``synthesize-wire-ops`` inserts them; :mod:`namu.runtime.wire` carries the values), and
the remote fan-out's ``namu.Scatter`` and ``namu.Gather`` (``partition`` inserts them;
:mod:`namu.runtime.federation` carries the requests and replies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ops.calls import unknown_types
from namu.ops.registry import Built, OpEnv, op


@op(NAMU_DOMAIN, "Send", "send input 0 on wire `channel` to placement `to` (no outputs)", types=unknown_types)
def _send(node: ir.Node, _env: OpEnv) -> Built:
    from namu.runtime.wire import send_op

    return send_op(node), None


def _recv_awaited(node: ir.Node, _env: OpEnv) -> Callable[..., Any]:
    from namu.runtime.wire import recv_coroutine_fn

    return recv_coroutine_fn(node)


@op(NAMU_DOMAIN, "Recv", "receive the value sent on wire `channel` from placement `from`", types=unknown_types,
    awaited=_recv_awaited)  # the kernel's run loop never blocks on a wire
def _recv(node: ir.Node, _env: OpEnv) -> Built:
    from namu.runtime.wire import recv_op

    return recv_op(node), None


@op(NAMU_DOMAIN, "Scatter",
    "remote fan-out: send each item of input 0 (with the other inputs) to the peer of placement `to` it names; "
    "output: the exchange", types=unknown_types)
def _scatter(node: ir.Node, _env: OpEnv) -> Built:
    from namu.runtime.federation import scatter_op

    return scatter_op(node), None


def _gather_awaited(node: ir.Node, _env: OpEnv) -> Callable[..., Any]:
    from namu.runtime.federation import gather_coroutine_fn

    return gather_coroutine_fn(node)


@op(NAMU_DOMAIN, "Gather", "the replies of a namu.Scatter's exchange, in item order (peers that missed the deadline "
    "left out)", types=unknown_types, awaited=_gather_awaited)
def _gather(node: ir.Node, _env: OpEnv) -> Built:
    from namu.runtime.federation import gather_op

    return gather_op(node), None


@op(NAMU_DOMAIN, "Handle", "a request handler of a peer class: graph `body` runs once per request on wire `channel` "
    "(through a federation); as a node, outputs `channel`", types=unknown_types)
def _handle(node: ir.Node, _env: OpEnv) -> Built:
    channel = node.attributes["channel"].as_string()
    return (lambda: channel), None
