"""Response caches of LLM calls, opt-in per agent (``cache:`` in the agent file).

* **Exact**: an answer is reused for an identical request. The key is the SHA-256 of the
  request's canonical JSON: provider, base URL, model, sampling parameters, system
  prompt, messages and tools. Entries live in process memory, or in the existing SQLite
  result cache (:class:`~namu.runtime.cache.DiskCache`, ``backend: sqlite``) shared
  between processes and runs.
* **Semantic**: an answer is reused for a request whose *last user message* is similar
  enough (cosine similarity of embeddings at or above ``threshold``) to one answered
  before with the same context: everything else of the request (model, parameters,
  system prompt, tools, earlier messages) must be identical, so a similar question in
  another conversation is never answered from this one. Embeddings come from the
  provider's OpenAI-compatible ``/embeddings`` endpoint or a Python function. (The
  idea of GPTCache and LangChain's semantic caches, keyed more strictly.)

A cached answer costs nothing: it is returned with zero usage. A streaming caller
receives its text as one delta and its tool calls as events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from namu.runtime.llm.messages import LLMRequest, LLMResponse, Usage

__all__ = ["ResponseCache", "response_cache"]

#: entries kept in memory per cache (least recently used dropped first)
MEMORY_ENTRIES = 4096
_SIMILAR_PREFIX = b"namu-semantic:"


def request_key(endpoint: Any, request: LLMRequest, *, without_last_user: bool = False) -> bytes:
    """The SHA-256 digest of what makes ``request``'s answer (see the module docstring)."""
    messages = list(request.messages)
    if without_last_user and messages and messages[-1].role == "user":
        messages = messages[:-1]
    canonical = {
        "provider": endpoint.provider,
        "base_url": endpoint.base_url,
        "model": request.model,
        "system": request.system,
        "messages": [m.to_json() for m in messages],
        "tools": [dataclasses.asdict(t) for t in request.tools],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "params": [list(p) for p in request.params],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=repr).encode()).digest()


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _cached(response: LLMResponse) -> LLMResponse:
    """``response`` as a cache hit returns it: no tokens spent."""
    return dataclasses.replace(response, usage=Usage())


class ResponseCache:
    """The response cache of one agent's cache settings (see :func:`response_cache`).

    Args:
        exact: reuse answers of identical requests.
        directory: the SQLite result cache's directory, or None (process memory).
        threshold: the semantic cache's cosine threshold, or None (no semantic cache).
        embed: ``embed(text) -> awaitable of list[float]`` for the semantic cache.
    """

    def __init__(self, *, exact: bool, directory: str | None, threshold: float | None,
                 embed: Callable[[str], Any] | None) -> None:
        self.exact = exact
        self.threshold = threshold
        self.embed = embed
        self._memory: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._disk = None
        if directory is not None:
            from namu.runtime.cache import DiskCache

            self._disk = DiskCache(directory)

    def _get(self, key: bytes) -> tuple[bool, Any]:
        if self._disk is not None:
            return self._disk.get(key)
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return True, self._memory[key]
        return False, None

    def _put(self, key: bytes, value: Any) -> None:
        if self._disk is not None:
            self._disk.put(key, value, "llm")
            return
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)

    async def lookup(self, endpoint: Any, request: LLMRequest) -> tuple[LLMResponse | None, Any]:
        """A cached answer to ``request``, or None; and what :meth:`store` needs to keep
        the answer once it is made (the keys, the embedding)."""
        exact_key = request_key(endpoint, request) if self.exact else None
        if exact_key is not None:
            found, value = self._get(exact_key)
            if found:
                return _cached(value), None
        similar = None
        last = request.messages[-1] if request.messages else None
        if self.threshold is not None and self.embed is not None and last is not None and last.role == "user":
            context = _SIMILAR_PREFIX + request_key(endpoint, request, without_last_user=True)
            vector = list(await self.embed(last.content))
            found, entries = self._get(context)
            if found:
                best = max(entries, key=lambda e: _cosine(vector, e[0]), default=None)
                if best is not None and _cosine(vector, best[0]) >= self.threshold:
                    return _cached(best[1]), None
            similar = (context, vector, entries if found else [])
        return None, (exact_key, similar)

    def store(self, keys: Any, response: LLMResponse) -> None:
        """Keep ``response`` under the keys :meth:`lookup` gave (answers cut off by
        ``max_tokens`` or refused are not kept)."""
        if keys is None or response.stop_reason not in ("end", "tool_use"):
            return
        exact_key, similar = keys
        if exact_key is not None:
            self._put(exact_key, response)
        if similar is not None:
            context, vector, entries = similar
            self._put(context, [*entries[-63:], (vector, response)])


_caches: dict[str, ResponseCache] = {}
_caches_lock = threading.Lock()


def response_cache(settings: dict[str, Any], endpoint: Any, base_dir: str) -> ResponseCache | None:
    """The process's cache for an agent's ``cache`` settings (``CacheSpec`` fields), or
    None when they enable none. One cache per distinct settings, kept for the process."""
    semantic = settings.get("semantic")
    if not settings.get("exact") and not semantic:
        return None
    key = json.dumps([settings, endpoint.provider, endpoint.base_url, base_dir], sort_keys=True)
    found = _caches.get(key)
    if found is None:
        with _caches_lock:
            found = _caches.get(key)
            if found is None:
                directory = None
                if settings.get("backend") == "sqlite":
                    directory = settings.get("directory") or os.environ.get("NAMU_CACHE_DIR") or str(Path.home() / ".namu" / "llm-cache")
                    directory = str(Path(base_dir, directory)) if not Path(directory).is_absolute() else directory
                embed = _embedder(semantic, endpoint, base_dir) if semantic else None
                found = _caches[key] = ResponseCache(
                    exact=bool(settings.get("exact")),
                    directory=directory,
                    threshold=semantic["threshold"] if semantic else None,
                    embed=embed,
                )
    return found


def _embedder(semantic: dict[str, Any], endpoint: Any, base_dir: str) -> Callable[[str], Any]:
    """``embed(text)``: the semantic cache's Python function, or the provider's
    embeddings endpoint."""
    if semantic.get("python"):
        from namu.runtime.tools.python import resolve_target

        fn = resolve_target(semantic["python"], base_dir)
        if inspect.iscoroutinefunction(fn):
            return fn
        return lambda text: asyncio.to_thread(fn, text)
    from namu.runtime.llm.providers import Endpoint, provider_for

    target = Endpoint(endpoint.provider if not semantic.get("base_url") else "openai",
                      semantic.get("base_url") or endpoint.base_url,
                      semantic.get("api_key_env") or endpoint.api_key_env, endpoint.timeout_s)
    model = semantic["embeddings_model"]

    async def embed(text: str) -> list[float]:
        return (await provider_for(target).embed([text], model))[0]

    return embed
