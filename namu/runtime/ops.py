"""What both executors share to build a node: the op registry's builders, and the call
site of a task (its binding under the call's policy: a gate's, or the task's own).

The meaning of every op is its definition in the op registry (:mod:`namu.ops`); both
executors (the native kernel and the reference interpreter) build their node callables
with :func:`build_node`, so they differ only in scheduling. A node callable takes the
node's inputs (then its captured outer values, for control flow) positionally and
returns one value, a tuple for several outputs, or anything for none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu.errors import IRVerificationError
from namu.ir.metadata import SPAN_KEY
from namu.ops.registry import Built, OpEnv, definition
from namu.runtime.tasks import (
    RETRY_BASE_DELAY_S,
    RETRY_MAX_DELAY_S,
    TaskBinding,
    guarded,
)

__all__ = [
    "GatePolicy",
    "build_node",
    "gate_body",
    "task_call_site",
]


def build_node(node: ir.Node, env: OpEnv) -> Built:
    """The callable implementing ``node``, and the handler its errors go through (or None).

    An executor calls the callable with the node's inputs; if it raises an ``Exception``
    and there is a handler, the executor raises ``handler(exc)`` instead.

    Raises:
        IRVerificationError: the op is unknown to namu's runtime, or its attributes make
            no op.
    """
    return definition(node).build(node, env)


def task_call_site(node: ir.Node, env: OpEnv) -> tuple[TaskBinding, list[str], str]:
    """A ``namu.Task`` node's (or the task a ``namu.Gate`` guards) task binding, under the
    policy of the call, its keyword-argument names and its call span.

    The policy: a gate's ``retries``, ``timeout_s``, backoff and ``fallback``; for a bare
    task, none of those when the model went through insert-resilience-gates
    (``env.gated``), else the node's ``retries``/``timeout_s`` attributes or, without
    them (models older than expand-defaults), the task's options and ``fallback``. The
    node's ``cache`` attribute, when present, overrides the task's ``cache`` option.

    Raises:
        IRVerificationError: a fallback task is not in the task table.
    """
    gate = None
    if node.op_type == "Gate":
        gate, node = node, gate_body(node)
    kwnames_attr = node.attributes.get("kwnames")
    kwnames = list(kwnames_attr.as_strings()) if kwnames_attr is not None else []
    binding = env.tasks[node.attributes["task"].as_string()]
    return _under_policy(binding, node, gate, env), kwnames, node.metadata_props.get(SPAN_KEY, "")


def gate_body(node: ir.Node) -> ir.Node:
    """The op a ``namu.Gate`` guards: the single node of its ``body`` (which reads the
    body's inputs, the gate's inputs, in order and writes its outputs).

    Raises:
        IRVerificationError: the body does not hold exactly one node.
    """
    nodes = list(node.attributes["body"].as_graph())
    if len(nodes) != 1:
        raise IRVerificationError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: a namu.Gate body must hold exactly one op, not {len(nodes)}"
        )
    return nodes[0]


def _number(node: ir.Node, name: str, default: float) -> float:
    """A numeric attribute; FLOAT attributes are float32, so round to float32 precision
    (``timeout_s=0.05`` reads back as 0.05, not 0.0500000007)."""
    attr = node.attributes.get(name)
    return default if attr is None else float(f"{float(attr.value):.7g}")


class GatePolicy:
    """The policy a ``namu.Gate`` node carries (see insert-resilience-gates).

    Attributes:
        retries: retries after a failing call.
        timeout_s: the limit of one attempt in seconds, or None (attribute 0: no limit).
        backoff_base_s, backoff_max_s: the retry backoff (``retry_delay_s``).
        fallback: the task-table key of the fallback task, or "".
        breaker: the process-wide circuit breaker named by attribute ``breaker``
            (``breaker_threshold`` failures open it for ``breaker_cooldown_s``), or None.
    """

    def __init__(self, gate: ir.Node) -> None:
        self.retries = int(_number(gate, "retries", 0))
        self.timeout_s = _number(gate, "timeout_s", 0.0) or None
        self.backoff_base_s = _number(gate, "backoff_base_s", RETRY_BASE_DELAY_S)
        self.backoff_max_s = _number(gate, "backoff_max_s", RETRY_MAX_DELAY_S)
        fallback = gate.attributes.get("fallback")
        self.fallback = fallback.as_string() if fallback is not None else ""
        key = gate.attributes.get("breaker")
        self.breaker = None
        if key is not None and key.as_string():
            from namu.runtime.tasks.breakers import breaker

            threshold = int(_number(gate, "breaker_threshold", 5))
            self.breaker = breaker(key.as_string(), threshold, _number(gate, "breaker_cooldown_s", 30.0))

    def guard(self, fn: Callable[..., Any], is_async: bool = False) -> Callable[..., Any]:
        """``fn`` (an op other than a task) retried and timed as the gate says."""
        return guarded(
            fn,
            retries=self.retries,
            timeout_s=self.timeout_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            is_async=is_async,
            breaker=self.breaker,
        )


def _fallback_binding(env: OpEnv, key: str | None, node: ir.Node) -> TaskBinding | None:
    if not key:
        return None
    try:
        return env.tasks[key]
    except KeyError:
        raise IRVerificationError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: fallback task {key!r} is not in the task table"
        ) from None


def _under_policy(binding: TaskBinding, node: ir.Node, gate: ir.Node | None, env: OpEnv) -> TaskBinding:
    """``binding`` with the policy of the call ``node`` (see :func:`task_call_site`);
    ``binding`` itself when that is its own options, so plain calls stay direct."""
    opts = binding.options
    cache_attr = node.attributes.get("cache")
    cache = bool(cache_attr.as_int()) if cache_attr is not None else opts.cache
    if gate is not None:
        policy = GatePolicy(gate)
        return binding.with_policy(
            retries=policy.retries,
            timeout_s=policy.timeout_s,
            cache=cache,
            backoff_base_s=policy.backoff_base_s,
            backoff_max_s=policy.backoff_max_s,
            fallback=_fallback_binding(env, policy.fallback, gate),
            breaker=policy.breaker,
        )
    if env.gated:
        retries, timeout_s, fallback = 0, None, None
    else:
        retries = int(_number(node, "retries", opts.retries))
        timeout_s = (_number(node, "timeout_s", 0.0) or None) if "timeout_s" in node.attributes else opts.timeout_s
        fallback = _fallback_binding(env, opts.fallback, node)
    if retries == opts.retries and timeout_s == opts.timeout_s and cache == opts.cache and fallback is None:
        return binding
    return binding.with_policy(retries=retries, timeout_s=timeout_s, cache=cache, fallback=fallback)
