"""What an agent's IR carries, as JSON: the agent's own settings (``namu.AgentStart``),
its LLM call's and its tool entries' (the slots' first inputs), and its signature.

Light on purpose (no onnx, no onnx_ir): ``namu run AGENT.yaml --dry-run`` builds its
plan from these without compiling the agent.
"""

from __future__ import annotations

import json
from typing import Any

from namu.frontend.agents.source import AgentSource
from namu.ir.metadata import Parameter, Signature

__all__ = ["agent_json", "llm_json", "signature_of", "slot_prefix", "tools_json"]


def slot_prefix(name: str) -> str:
    """The prefix of an agent's role slots (its name, ``-`` read as ``_``)."""
    return name.replace("-", "_")


def agent_json(source: AgentSource) -> str:
    """What ``namu.AgentStart`` needs (``namu.runtime.llm.react.AgentConfig``), as JSON."""
    spec = source.spec
    return json.dumps(
        {
            "name": spec.name,
            "system_prompt": spec.system_prompt,
            "prompt": spec.prompt,
            "variables": [name for name, _ in source.variables],
            "defaults": {name: default for name, default in source.variables if default is not None},
            "provider": spec.llm.provider,
            "model": spec.llm.model,
            "api_key_envs": sorted({env for env in [spec.llm.api_key_env, *(fb.api_key_env for fb in spec.llm.fallback)] if env}),
            "tool_mode": spec.llm.tool_mode,
            "limits": spec.limits.model_dump(),
            "prices": {model: price.model_dump() for model, price in spec.llm.prices.items()},
        },
        sort_keys=True,
    )


def llm_json(source: AgentSource) -> str:
    """The ``llm`` input of the LLM call (``namu.runtime.llm.tasks.LLMCall``), as JSON."""
    llm = source.spec.llm

    def call(provider: str, model: str, base_url: str | None, api_key_env: str | None, max_tokens: int,
             temperature: float | None) -> dict[str, Any]:
        if base_url is not None and "://" not in base_url:
            base_url = f"http://{base_url}"
        return {
            "provider": provider,
            "model": model,
            "base_url": base_url,
            "api_key_env": api_key_env,
            "timeout_s": llm.timeout_s,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "params": llm.params,
            "stream": llm.stream,
            "tool_mode": llm.tool_mode,
        }

    primary = call(llm.provider, llm.model, llm.base_url, llm.api_key_env, llm.max_tokens, llm.temperature)
    primary["retry"] = llm.retry.model_dump()
    primary["cache"] = source.spec.cache.model_dump()
    primary["base_dir"] = source.base_dir
    primary["breaker"] = llm.circuit_breaker.model_dump()
    primary["fallback"] = [
        call(
            fb.provider or llm.provider,
            fb.model,
            fb.base_url if fb.base_url is not None or (fb.provider or llm.provider) != llm.provider else llm.base_url,
            fb.api_key_env if fb.api_key_env is not None or (fb.provider or llm.provider) != llm.provider else llm.api_key_env,
            fb.max_tokens or llm.max_tokens,
            fb.temperature if fb.temperature is not None else llm.temperature,
        )
        for fb in llm.fallback
    ]
    return json.dumps(primary, sort_keys=True)


def tools_json(source: AgentSource) -> list[str]:
    """Each ``tools`` entry as the JSON its tool call takes (``{"kind", "options", "base_dir"}``)."""
    return [
        json.dumps({"kind": e.kind, "options": e.options.model_dump(mode="json"), "base_dir": source.base_dir}, sort_keys=True)
        for e in source.tools
    ]


def signature_of(source: AgentSource) -> Signature:
    """The agent's signature: ``input`` (the user message, default ""), then its template
    variables. A variable without a default defaults to None, which ``namu.AgentStart``
    refuses with the variable's name (so the parameters keep their order: input first)."""
    params = [Parameter(name="input", type="str", has_default=True, default="")]
    params += [Parameter(name=name, type="str", has_default=True, default=default) for name, default in source.variables]
    return Signature(name=source.spec.name, file=source.path, params=params)
