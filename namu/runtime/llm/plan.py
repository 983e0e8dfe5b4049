"""``namu run AGENT --dry-run``: what an agent's first request would be, and cost, without
calling anything over the network.

The plan is made of what the agent's IR carries (the ``namu.AgentStart`` attribute, the
LLM call's and the tools' JSON inputs): read from a compiled artifact, or, for an agent
file, made by :mod:`namu.frontend.agents.config` without compiling (so without
importing onnx), the same JSON the compile would write. It describes exactly what the
run would do: the model and endpoint, the limits, every tool with its input schema (an MCP
server's tools are listed only when a run starts), the prompts rendered over the given
inputs, the first request's estimated input tokens and its estimated cost.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from namu.errors import AgentSpecError

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["dry_run_plan", "plan_of"]

#: tool kinds whose listing may reach outside the process (not listed in a dry run)
_REMOTE_KINDS = ("mcp",)


def _find(model: ir.Model, op_type: str) -> ir.Node:
    from namu.ir.scopes import walk

    for node in walk(model.graph):
        if node.op_type == op_type:
            return node
    raise AgentSpecError(f"this artifact is not an agent's: it has no namu.{op_type}")


def _json_input(node: ir.Node, index: int) -> Any:
    from namu.ir.constants import NOT_CONSTANT, constant_value

    value = constant_value(node.inputs[index])
    if value is NOT_CONSTANT:
        raise AgentSpecError(f"input {index} of namu.{node.op_type} is not a constant")
    return json.loads(value)


def dry_run_plan(art: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan of an agent artifact's first request (see :func:`plan_of`), read from
    its IR.

    Raises:
        AgentSpecError: the artifact is not an agent's.
        InputError: a template variable is missing.
    """
    from namu.ir.constants import NOT_CONSTANT, constant_value

    model = art.model
    start_node = _find(model, "AgentStart")
    observe = _find(model, "AgentObserve")
    llm_node = observe.inputs[1].producer()
    llm_text = constant_value(llm_node.inputs[0]) if llm_node is not None else NOT_CONSTANT
    if llm_text is NOT_CONSTANT:
        raise AgentSpecError("the LLM call of this agent takes no constant model description")
    entries = _json_input(start_node.inputs[0].producer(), 0)  # list_tools(tools)
    return plan_of(start_node.attributes["agent"].as_string(), llm_text, entries, inputs)


def plan_of(config_text: str, llm_text: str, entries: list[dict[str, Any]], inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan of an agent's first request; no network call is made.

    Args:
        config_text: the agent's settings (``namu.AgentStart``'s ``agent`` attribute).
        llm_text: the LLM call's model description (JSON).
        entries: the tool entries (``{"kind", "options", "base_dir"}``).
        inputs: the run's inputs (``input`` and template variables).

    Returns:
        A JSON object: ``agent``, ``llm`` (provider, model, base_url, max_tokens,
        temperature, tool_mode, fallback), ``limits``, ``tools`` (name, description,
        input_schema), ``system`` and ``messages`` rendered, ``estimated_input_tokens``,
        ``estimated_cost_usd`` (input at the estimate, output at ``max_tokens``; None
        when the price is unknown) and ``notes``.

    Raises:
        InputError: a template variable is missing.
    """
    from namu.runtime.llm.pricing import estimate_request_tokens
    from namu.runtime.llm.react import ToolCatalog, agent_config, start
    from namu.runtime.llm.tasks import llm_call
    from namu.runtime.tools.base import tool_kit_class, tool_options_class

    config = agent_config(config_text)
    call = llm_call(llm_text)
    notes: list[str] = []
    specs = []

    async def list_local() -> None:
        for entry in entries:
            if entry["kind"] in _REMOTE_KINDS:
                notes.append(f"the tools of the {entry['kind']} entry are listed when a run starts")
                continue
            options = tool_options_class(entry["kind"]).model_validate(entry["options"])
            kit = tool_kit_class(entry["kind"])(options, entry["base_dir"])
            try:
                specs.extend(tool.spec() for tool in await kit.tools())
            finally:
                await kit.aclose()

    asyncio.run(list_local())
    catalog = ToolCatalog(tuple(specs), {spec.name: i for i, spec in enumerate(specs)})
    ordered = [inputs.get(name) for name in config.variables]
    state = start(config_text, catalog, inputs.get("input", ""), *ordered)
    tokens = estimate_request_tokens(state.system, state.messages, specs)
    price = config.price
    cost = None
    if price is not None:
        cost = (tokens * price.input_per_mtok + call.max_tokens * price.output_per_mtok) / 1e6
    return {
        "agent": config.name,
        "llm": {
            "provider": call.endpoint.provider,
            "model": call.model,
            "base_url": call.endpoint.base_url,
            "max_tokens": call.max_tokens,
            "temperature": call.temperature,
            "tool_mode": call.tool_mode,
            "fallback": [f"{fb.endpoint.provider}/{fb.model}" for fb in call.fallback],
        },
        "limits": config.limits,
        "tools": [{"name": s.name, "description": s.description, "input_schema": s.input_schema} for s in specs],
        "system": state.system,
        "messages": [m.to_json() for m in state.messages],
        "estimated_input_tokens": tokens,
        "estimated_cost_usd": cost,
        "notes": notes,
    }
