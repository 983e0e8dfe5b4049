"""The Anthropic adapter: the official ``anthropic`` SDK's ``AsyncAnthropic`` client and
the Messages API, with native tool use, streaming, and usage including cache tokens.

Translation (:mod:`namu.runtime.llm.messages` -> Messages API):

* :attr:`LLMRequest.system` -> ``system``; tools -> ``tools=[{name, description,
  input_schema}]``; ``temperature`` and :attr:`LLMRequest.params` go in the body as they
  are (``extra_body``);
* ``Message("assistant")`` with tool calls -> a text block and ``tool_use`` blocks;
  ``Message("tool")`` -> a user message of ``tool_result`` blocks (``is_error`` kept);
* the answer's text blocks -> :attr:`LLMResponse.text`, ``tool_use`` blocks -> tool calls;
  ``stop_reason`` normalized (``end_turn``/``stop_sequence`` -> ``"end"``, ``refusal``
  -> ``"refusal"`` with ``stop_details.explanation`` as the refusal text).

Streaming reads the SDK's raw stream events (``messages.create(stream=True)``): a
``TextDelta`` per ``text_delta``, a ``ToolCallEvent`` at each ``tool_use`` block's
``content_block_stop``. The usage of ``message_start`` is replaced field by field by the
``message_delta`` usage, which is cumulative (adding them would count tokens twice).

The SDK's retries are off (``max_retries=0``): namu's gates retry.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anthropic
import httpx2

from namu.errors import ProviderRequestError
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
    RAW_ARGUMENTS_KEY,
    error_for_status,
    parse_arguments,
    report,
    response_error,
    unavailable_error,
)

__all__ = ["AnthropicProvider"]

_STOP: dict[str | None, StopReason] = {
    "end_turn": "end",
    "stop_sequence": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "refusal": "refusal",
}


def _message(message: Message) -> dict[str, Any]:
    """One transcript message as a Messages API message."""
    if message.role == "tool":
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content, "is_error": r.is_error}
            for r in message.tool_results
        ]
        if message.content:
            blocks.append({"type": "text", "text": message.content})
        return {"role": "user", "content": blocks}
    if not message.tool_calls:
        return {"role": message.role, "content": message.content}
    blocks = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls]
    return {"role": message.role, "content": blocks}


def _usage(usage: Any) -> Usage:
    return Usage(
        usage.input_tokens or 0,
        usage.output_tokens or 0,
        usage.cache_creation_input_tokens or 0,
        usage.cache_read_input_tokens or 0,
    )


def _refusal(stop_reason: str | None, stop_details: Any, text: str) -> str:
    """The refusal text: Anthropic's explanation, else the text it gave, else its category."""
    if stop_reason != "refusal":
        return ""
    explanation = getattr(stop_details, "explanation", None)
    category = getattr(stop_details, "category", None)
    return explanation or text or f"refused ({category or 'no reason given'})"


class AnthropicProvider(Provider):
    """The Messages API through the official SDK's ``AsyncAnthropic`` client.

    The client is made on the first call (one per provider, so calls share its
    connection pool): base URL from the endpoint, ``ANTHROPIC_BASE_URL`` or
    ``https://api.anthropic.com``; the key from the endpoint's ``api_key_env``
    (default ``ANTHROPIC_API_KEY``); the timeout of each network operation (connect,
    each read) from :attr:`Endpoint.timeout_s`; no SDK retries.
    """

    name: ClassVar[str] = "anthropic"
    default_api_key_env: ClassVar[str] = "ANTHROPIC_API_KEY"
    default_base_url_env: ClassVar[str] = "ANTHROPIC_BASE_URL"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self._client: anthropic.AsyncAnthropic | None = None
        self._secret: str | None = None

    def _connect(self, model: str) -> anthropic.AsyncAnthropic:
        key = self.api_key()
        if key is None:
            variable = self.endpoint.api_key_env or self.default_api_key_env
            raise ProviderRequestError(
                f"anthropic model {model!r}: the environment variable {variable} holding the API key is not set",
                provider=self.name,
                model=model,
            )
        self._secret = key
        self._client = anthropic.AsyncAnthropic(
            api_key=key, base_url=self.base_url, timeout=self.endpoint.timeout_s, max_retries=0
        )
        return self._client

    async def complete(self, request: LLMRequest, on_event: EventSink | None = None) -> LLMResponse:
        """Call the model once (see :meth:`Provider.complete`).

        Raises:
            RateLimitError: 429, or 529 ``overloaded_error`` (``retry_after_s`` from the
                ``retry-after`` header).
            ProviderUnavailableError: 5xx, a timeout, a refused or dropped connection.
            ProviderRequestError: another 4xx, or the API key's variable is unset.
            ProviderResponseError: an answer or stream that cannot be read.
        """
        client = self._client or self._connect(request.model)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [_message(m) for m in request.messages],
        }
        if request.system:
            kwargs["system"] = request.system
        if request.tools:
            kwargs["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
            ]
        extra = dict(request.params)
        if request.temperature is not None:
            extra.setdefault("temperature", request.temperature)
        if extra:
            kwargs["extra_body"] = extra
        try:
            if request.stream:
                return await self._stream(client, kwargs, request.model, on_event)
            response = self._response(await client.messages.create(**kwargs))
        except anthropic.APIStatusError as err:
            status = err.status_code if err.status_code >= 400 else None  # an error event in a stream
            raise error_for_status(
                provider=self.name, model=request.model, status=status, body=err.body,
                headers=err.response.headers, secret=self._secret,
            ) from None
        except (anthropic.APITimeoutError, httpx2.TimeoutException) as err:
            raise unavailable_error(
                provider=self.name, model=request.model, timeout_s=self.endpoint.timeout_s, cause=err
            ) from err
        except anthropic.APIConnectionError as err:
            raise unavailable_error(
                provider=self.name, model=request.model, timeout_s=None, cause=err.__cause__ or err
            ) from err
        except httpx2.TransportError as err:  # while a stream is read (the SDK wraps only the request)
            raise unavailable_error(provider=self.name, model=request.model, timeout_s=None, cause=err) from err
        except (ValueError, AttributeError, KeyError, IndexError, TypeError) as err:  # not JSON, or not the API's JSON
            raise response_error(provider=self.name, model=request.model, what=f"{type(err).__name__}: {err}") from err
        report(response, on_event)
        return response

    @staticmethod
    def _response(message: Any) -> LLMResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = block.input
                if not isinstance(arguments, dict):
                    arguments = {RAW_ARGUMENTS_KEY: arguments if isinstance(arguments, str) else repr(arguments)}
                calls.append(ToolCall(block.id, block.name, arguments))
        text = "".join(texts)
        raw = message.stop_reason
        return LLMResponse(
            text, tuple(calls), _STOP.get(raw, "other"), raw or "", _usage(message.usage), message.model,
            _refusal(raw, message.stop_details, text),
        )

    async def _stream(
        self, client: anthropic.AsyncAnthropic, kwargs: dict[str, Any], model: str, on_event: EventSink | None
    ) -> LLMResponse:
        stream = await client.messages.create(**kwargs, stream=True)
        texts: list[str] = []
        calls: list[ToolCall] = []
        pending: dict[int, tuple[str, str, list[str]]] = {}  # block index -> (id, name, JSON pieces)
        usage = Usage()
        raw_stop: str | None = None
        stop_details = None
        stopped = False
        async with stream:
            async for event in stream:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        texts.append(delta.text)
                        if on_event is not None:
                            on_event(TextDelta(delta.text))
                    elif delta.type == "input_json_delta":
                        pending[event.index][2].append(delta.partial_json)
                elif kind == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        pending[event.index] = (block.id, block.name, [])
                    elif block.type == "text" and block.text:
                        texts.append(block.text)
                        if on_event is not None:
                            on_event(TextDelta(block.text))
                elif kind == "content_block_stop":
                    started = pending.pop(event.index, None)
                    if started is not None:
                        call = ToolCall(started[0], started[1], parse_arguments("".join(started[2])))
                        calls.append(call)
                        if on_event is not None:
                            on_event(ToolCallEvent(call))
                elif kind == "message_start":
                    message = event.message
                    model = message.model or model
                    usage = _usage(message.usage)
                elif kind == "message_delta":
                    raw_stop = event.delta.stop_reason
                    stop_details = event.delta.stop_details
                    cumulative = event.usage  # totals so far, not increments: replace, never add
                    usage = Usage(
                        usage.input_tokens if cumulative.input_tokens is None else cumulative.input_tokens,
                        cumulative.output_tokens,
                        usage.cache_creation_input_tokens
                        if cumulative.cache_creation_input_tokens is None
                        else cumulative.cache_creation_input_tokens,
                        usage.cache_read_input_tokens
                        if cumulative.cache_read_input_tokens is None
                        else cumulative.cache_read_input_tokens,
                    )
                elif kind == "message_stop":
                    stopped = True
        if not stopped:
            raise response_error(provider=self.name, model=model, what="the stream ended before message_stop")
        text = "".join(texts)
        return LLMResponse(
            text, tuple(calls), _STOP.get(raw_stop, "other"), raw_stop or "", usage, model,
            _refusal(raw_stop, stop_details, text),
        )

    async def aclose(self) -> None:
        """Close the SDK client's connections (a later call makes a new client)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
