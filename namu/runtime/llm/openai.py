"""The OpenAI-compatible adapter: raw ``httpx`` against any chat-completions server
(OpenAI, vLLM, Ollama, llama.cpp server, ...).

Translation (:mod:`namu.runtime.llm.messages` -> ``POST {base_url}/chat/completions``):

* :attr:`LLMRequest.system` -> a first ``system`` message; tools -> ``tools=[{"type":
  "function", "function": {name, description, parameters}}]``;
* ``Message("assistant")`` with tool calls -> ``tool_calls`` with the arguments as JSON
  text; ``Message("tool")`` -> one ``tool`` message per result (the chat-completions
  format has no error flag: a failed tool's content is sent prefixed ``"Error: "``);
* ``max_tokens`` is sent as ``max_tokens``, which every compatible server reads; a
  request whose :attr:`LLMRequest.params` holds ``max_completion_tokens`` (OpenAI's
  reasoning models) sends that instead. ``params`` go in the body as they are;
* ``finish_reason`` normalized (``stop`` -> ``"end"``, ``tool_calls`` -> ``"tool_use"``,
  ``length`` -> ``"max_tokens"``, ``content_filter`` or a ``refusal`` -> ``"refusal"``);
  ``prompt_tokens_details.cached_tokens`` -> cache reads (and out of ``input_tokens``).

Streaming sends ``stream_options: {"include_usage": true}`` and reads the ``data:``
events: a ``TextDelta`` per content delta; tool-call deltas are assembled by their
``index``, and a ``ToolCallEvent`` is reported when the next call begins or the choice
finishes. A stream that ends without its usage chunk (a server that ignores
``include_usage``, a proxy that drops it) gives ``Usage(complete=False)``: no input
tokens, and as output tokens the number of content, refusal and argument deltas, each of
which carries at least one token, so it is a lower bound.

Tool-call arguments that are not a JSON object are kept as ``{"_raw": text}``
(:func:`~namu.runtime.llm.wire.parse_arguments`).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

from namu.runtime.llm.messages import (
    LLMRequest,
    LLMResponse,
    Message,
    StopReason,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from namu.runtime.llm.providers import Endpoint, EventSink, Provider
from namu.runtime.llm.wire import (
    error_for_status,
    parse_arguments,
    report,
    response_error,
    unavailable_error,
)

__all__ = ["OpenAIProvider"]

_STOP: dict[str | None, StopReason] = {
    "stop": "end",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
#: the connection pool of a client: as the ``anthropic`` SDK's, so that benchmarks compare like with like
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)


def _messages(system: str, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The transcript as chat-completions messages."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == "tool":
            out += [
                {"role": "tool", "tool_call_id": r.call_id, "content": f"Error: {r.content}" if r.is_error else r.content}
                for r in message.tool_results
            ]
            if message.content:
                out.append({"role": "user", "content": message.content})
        elif message.tool_calls:
            out.append({
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                    for c in message.tool_calls
                ],
            })
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def _usage(usage: dict[str, Any] | None) -> Usage:
    if not usage:
        return Usage(complete=False)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Usage((usage.get("prompt_tokens") or 0) - cached, usage.get("completion_tokens") or 0, 0, cached)


def _stop(finish_reason: str, refusal: str, text: str) -> tuple[StopReason, str]:
    """The normalized stop reason and the refusal text: a ``refusal`` field (whatever the
    ``finish_reason``) or ``content_filter`` is a refusal, told by that field, else by
    the text, else by the reason itself."""
    if refusal:
        return "refusal", refusal
    stop = _STOP.get(finish_reason, "other")
    if stop == "refusal":
        return stop, text or f"refused (finish_reason: {finish_reason})"
    return stop, ""


class OpenAIProvider(Provider):
    """Chat completions over ``httpx``, against any OpenAI-compatible server.

    One ``httpx.AsyncClient`` per provider, made on the first call and kept (keep-alive
    connections): base URL from the endpoint, ``OPENAI_BASE_URL`` or
    ``https://api.openai.com/v1``; ``Authorization: Bearer`` only when the key's variable
    (the endpoint's ``api_key_env``, default ``OPENAI_API_KEY``) is set, since local
    servers need none; the timeout of each network operation (connect, each read) from
    :attr:`Endpoint.timeout_s`.
    """

    name: ClassVar[str] = "openai"
    default_api_key_env: ClassVar[str] = "OPENAI_API_KEY"
    default_base_url_env: ClassVar[str] = "OPENAI_BASE_URL"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self._client: httpx.AsyncClient | None = None
        self._secret: str | None = None
        self._url = ""

    def _connect(self) -> httpx.AsyncClient:
        headers = {"content-type": "application/json"}
        self._secret = self.api_key()
        if self._secret is not None:
            headers["authorization"] = f"Bearer {self._secret}"
        self._url = self.base_url.rstrip("/") + "/chat/completions"
        self._client = httpx.AsyncClient(headers=headers, timeout=self.endpoint.timeout_s, limits=_LIMITS)
        return self._client

    def _body(self, request: LLMRequest) -> bytes:
        body: dict[str, Any] = {"model": request.model, "messages": _messages(request.system, request.messages)}
        params = dict(request.params)
        if "max_completion_tokens" not in params:
            body["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}
                for t in request.tools
            ]
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(params)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    async def complete(self, request: LLMRequest, on_event: EventSink | None = None) -> LLMResponse:
        """Call the model once (see :meth:`Provider.complete`).

        Raises:
            RateLimitError: 429 (``retry_after_s`` from ``retry-after-ms`` or
                ``retry-after``, in seconds or as an HTTP date).
            ProviderUnavailableError: 5xx, a timeout, a refused or dropped connection.
            ProviderRequestError: another 4xx (or a 429 ``insufficient_quota``).
            ProviderResponseError: an answer or stream that cannot be read.
        """
        client = self._client or self._connect()
        model = request.model
        try:
            if request.stream:
                async with client.stream("POST", self._url, content=self._body(request)) as answer:
                    if answer.status_code >= 300:
                        await answer.aread()
                        raise self._status_error(answer, model)
                    return await self._read_stream(answer, model, on_event)
            answer = await client.post(self._url, content=self._body(request))
            if answer.status_code >= 300:
                raise self._status_error(answer, model)
            response = self._response(json.loads(answer.content), model)
        except httpx.TimeoutException as err:
            raise unavailable_error(provider=self.name, model=model, timeout_s=self.endpoint.timeout_s, cause=err) from err
        except httpx.TransportError as err:
            raise unavailable_error(provider=self.name, model=model, timeout_s=None, cause=err) from err
        except (ValueError, AttributeError, KeyError, IndexError, TypeError) as err:  # not JSON, or not the API's JSON
            raise response_error(provider=self.name, model=model, what=f"{type(err).__name__}: {err}") from err
        report(response, on_event)
        return response

    async def embed(self, texts: list[str], model: str) -> list[list[float]]:
        """Embeddings from ``POST {base_url}/embeddings`` (see :meth:`Provider.embed`).

        Raises:
            LLMError: as :meth:`complete`.
        """
        client = self._client or self._connect()
        url = self._url.removesuffix("/chat/completions") + "/embeddings"
        try:
            answer = await client.post(url, content=json.dumps({"model": model, "input": texts}).encode())
            if answer.status_code >= 300:
                raise self._status_error(answer, model)
            data = sorted(json.loads(answer.content)["data"], key=lambda item: item["index"])
            return [list(map(float, item["embedding"])) for item in data]
        except httpx.TimeoutException as err:
            raise unavailable_error(provider=self.name, model=model, timeout_s=self.endpoint.timeout_s, cause=err) from err
        except httpx.TransportError as err:
            raise unavailable_error(provider=self.name, model=model, timeout_s=None, cause=err) from err
        except (ValueError, KeyError, TypeError) as err:
            raise response_error(provider=self.name, model=model, what=f"{type(err).__name__}: {err}") from err

    def _status_error(self, answer: httpx.Response, model: str) -> Exception:
        return error_for_status(
            provider=self.name, model=model, status=answer.status_code, body=answer.content,
            headers=answer.headers, secret=self._secret,
        )

    @staticmethod
    def _response(data: dict[str, Any], model: str) -> LLMResponse:
        choice = data["choices"][0]
        message = choice["message"]
        calls = tuple(
            ToolCall(c["id"], c["function"]["name"], parse_arguments(c["function"].get("arguments") or ""))
            for c in message.get("tool_calls") or ()
        )
        text = message.get("content") or ""
        raw = choice.get("finish_reason") or ""
        stop, refusal = _stop(raw, message.get("refusal") or "", text)
        return LLMResponse(text, calls, stop, raw, _usage(data.get("usage")), data.get("model") or model, refusal)

    async def _read_stream(self, answer: httpx.Response, model: str, on_event: EventSink | None) -> LLMResponse:
        texts: list[str] = []
        refusals: list[str] = []
        calls: list[ToolCall] = []
        building: dict[int, tuple[str, str, list[str]]] = {}  # index -> (id, name, argument pieces)
        usage: dict[str, Any] | None = None
        raw_stop: str | None = None
        deltas = 0

        def finish(below: int | None) -> None:
            """Complete the calls being built with an index below ``below`` (None: all)."""
            for index in sorted(building):
                if below is not None and index >= below:
                    break
                call_id, name, pieces = building.pop(index)
                call = ToolCall(call_id or f"call_{index}", name, parse_arguments("".join(pieces)))
                calls.append(call)
                if on_event is not None:
                    on_event(ToolCallEvent(call))

        async for line in answer.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank lines, "event:", ": keep-alive" comments
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise error_for_status(
                    provider=self.name, model=model, status=None, body=chunk, headers=answer.headers,
                    secret=self._secret,
                )
            model = chunk.get("model") or model
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content:
                    deltas += 1
                    texts.append(content)
                    if on_event is not None:
                        on_event(TextDelta(content))
                if delta.get("refusal"):
                    deltas += 1
                    refusals.append(delta["refusal"])
                for piece in delta.get("tool_calls") or ():
                    index = piece.get("index", 0)
                    function = piece.get("function") or {}
                    if index not in building:
                        finish(index)
                        building[index] = (piece.get("id") or "", function.get("name") or "", [])
                    if function.get("arguments"):
                        deltas += 1
                        building[index][2].append(function["arguments"])
                if choice.get("finish_reason"):
                    raw_stop = choice["finish_reason"]
        if raw_stop is None:
            raise response_error(provider=self.name, model=model, what="the stream ended before a finish_reason")
        finish(None)
        text = "".join(texts)
        stop, refusal = _stop(raw_stop, "".join(refusals), text)
        counted = _usage(usage) if usage else Usage(output_tokens=deltas, complete=False)
        return LLMResponse(text, tuple(calls), stop, raw_stop, counted, model, refusal)

    async def aclose(self) -> None:
        """Close the client's connections (a later call makes a new client)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
