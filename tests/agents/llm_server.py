"""A protocol-true, scripted LLM server on loopback, for tests and benchmarks.

It speaks the wire formats the adapters are written against, so the real ``anthropic``
SDK and namu's ``httpx`` adapter talk to it exactly as they talk to a provider:

* the Anthropic Messages API, ``POST /v1/messages``: a JSON message, or Server-Sent
  Events as Anthropic sends them (``message_start`` with usage, ``content_block_start``
  / ``content_block_delta`` (``text_delta``, ``input_json_delta`` split over several
  ``partial_json`` pieces) / ``content_block_stop``, a ``ping``, ``message_delta`` with
  the stop reason and the cumulative usage, ``message_stop``); errors as
  ``{"type": "error", "error": {"type", "message"}}``;
* OpenAI chat completions, ``POST /v1/chat/completions``: a JSON completion, or
  ``data: {chunk}`` events ending ``data: [DONE]``, tool-call arguments split over
  several chunks, and the usage chunk (``choices: []``) when
  ``stream_options.include_usage`` asks for it; errors as ``{"error": {...}}``;
* OpenAI embeddings, ``POST /v1/embeddings``: deterministic vectors (:func:`embedding`).

Requests are checked the way the providers check them (required fields, every tool call
answered by the next turn, ``anthropic-version`` sent, the API key when the server has
one), so an adapter that builds a wrong request fails a test with the provider's own
kind of 400.

Each chat request takes the next scripted step (:meth:`LLMServer.script`): a
:class:`Reply` to send, or a :class:`Fault` to inject. With no step queued, the
server asks :attr:`LLMServer.responder`, by default :func:`calculator_model`, a
deterministic model that calls the ``calculator`` tool and then answers with its
result, so multi-step tool conversations and concurrent benchmarks need no script.

The HTTP/1.1 server is a small ``asyncio.Protocol`` (keep-alive, chunked streaming) on
its own event loop in a background thread. It is not uvicorn + starlette on purpose: a
benchmark's client and this server share one interpreter, so every microsecond the
server spends is taken from the client; this one costs tens of microseconds a request.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import hashlib
import http
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

__all__ = [
    "Fault",
    "LLMServer",
    "RecordedRequest",
    "Reply",
    "calculator_model",
    "embedding",
    "last_user_text",
    "tool_results",
]

Api = Literal["anthropic", "openai"]


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the scripted model answers to one chat request.

    Attributes:
        text: the answer's text (with ``stop="refusal"``: the refusal's explanation,
            Anthropic's ``stop_details.explanation``, OpenAI's ``message.refusal``).
        tool_calls: ``(tool name, arguments)`` pairs, in order; ids are made up. Arguments
            given as a ``str`` are sent verbatim as the arguments' JSON text (OpenAI's
            ``arguments``, Anthropic's streamed ``partial_json``; a non-streamed Anthropic
            message carries it as ``input``), to send malformed arguments.
        stop: ``"end"``, ``"tool_use"``, ``"max_tokens"`` or ``"refusal"``, sent as the
            API's own reason (``end_turn``/``stop``, ``tool_use``/``tool_calls``,
            ``max_tokens``/``length``, ``refusal``/``content_filter``); any other string
            is sent as it is; None: ``"tool_use"`` if there are tool calls, else ``"end"``.
        usage: ``(input_tokens, output_tokens)``; None: about four bytes a token of the
            request body and of the answer. ``input_tokens`` excludes cached tokens
            (OpenAI's ``prompt_tokens`` is ``input_tokens`` plus the cache reads).
        cache: ``(cache_creation_input_tokens, cache_read_input_tokens)``; OpenAI reports
            only the reads, as ``prompt_tokens_details.cached_tokens``.
        omit_stream_usage: an OpenAI stream ends without its usage chunk even when
            ``stream_options.include_usage`` asked for it (Anthropic streams always carry
            their usage).
    """

    text: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any] | str]] = ()
    stop: str | None = None
    usage: tuple[int, int] | None = None
    cache: tuple[int, int] = (0, 0)
    omit_stream_usage: bool = False

    @property
    def stop_reason(self) -> str:
        """The neutral stop reason sent (``stop``, or inferred from the tool calls)."""
        return self.stop or ("tool_use" if self.tool_calls else "end")


@dataclasses.dataclass(frozen=True)
class Fault:
    """A failure injected in place of one answer.

    Exactly one of ``status``, ``malformed`` and ``drop`` may be set; with none, the
    fault is only the delay, and the request is answered late by the responder.

    Attributes:
        status: answer with this HTTP status and an error body in the API's shape
            (429 ``rate_limit_error``, 500 ``api_error``, 529 ``overloaded_error``, ...).
        retry_after_s: send ``retry-after`` with this many seconds.
        headers: more response headers (e.g. ``{"retry-after": <an HTTP date>}``).
        message: the error body's message (default: the status's reason phrase).
        malformed: answer 200 with a truncated JSON body, or a stream that breaks off in
            the middle of an event's JSON (then ends cleanly).
        drop: close the connection without an answer.
        delay_s: wait this many seconds (on the server; other connections go on) first.
        in_stream: for a streaming request, begin a normal stream first, then fail in
            it: ``status`` as an error event (Anthropic's ``event: error``, an OpenAI
            ``data: {"error": ...}``), ``drop`` by closing the connection mid-stream.
    """

    status: int | None = None
    retry_after_s: float | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    message: str | None = None
    malformed: bool = False
    drop: bool = False
    delay_s: float = 0.0
    in_stream: bool = False

    def __post_init__(self) -> None:
        if (self.status is not None) + self.malformed + self.drop > 1:
            raise ValueError("a Fault is one of status=, malformed=True or drop=True")
        if self.in_stream and self.status is None and not self.drop:
            raise ValueError("in_stream=True needs status= or drop=True")


Step = Reply | Fault
Responder = Callable[[dict[str, Any], Api], Reply]


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        api: ``"anthropic"`` or ``"openai"`` (also for ``/v1/embeddings``).
        path: the request's path (``/v1/messages``, ``/v1/chat/completions``, ...).
        json: the decoded JSON body (None if it was not JSON).
        headers: the request's headers, names in lower case.
    """

    api: Api
    path: str
    json: Any
    headers: dict[str, str]

    @property
    def stream(self) -> bool:
        """The request asked for a streamed answer."""
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


# -- the default responder ------------------------------------------------------------------

_EXPRESSION = re.compile(r"[\d(][\d\s.+\-*/%^()]*[\d)]")
_OPERATOR = re.compile(r"[+\-*/%^]")


def _block_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of blocks (Anthropic) or
    parts (OpenAI), both ``{"type": "text", "text": ...}`` for text."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text of the last user message of a chat request, either API ("" if none)."""
    for message in reversed(request.get("messages", ())):
        if message.get("role") == "user":
            return _block_text(message.get("content") or "")
    return ""


def tool_results(request: Mapping[str, Any], api: Api) -> list[str]:
    """The tool results the last message of a chat request carries (Anthropic: the
    ``tool_result`` blocks of the last user message; OpenAI: the trailing ``tool``
    messages), as text, in order; empty when the last message carries none."""
    messages = request.get("messages", ())
    if api == "anthropic":
        content = messages[-1].get("content") if messages else None
        if not isinstance(content, list):
            return []
        return [_block_text(b.get("content", "")) for b in content if b.get("type") == "tool_result"]
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(_block_text(message.get("content") or ""))
    return results[::-1]


def _tool_names(request: Mapping[str, Any], api: Api) -> set[str]:
    if api == "anthropic":
        return {tool.get("name") for tool in request.get("tools", ())}
    return {tool.get("function", {}).get("name") for tool in request.get("tools", ())}


def calculator_model(request: dict[str, Any], api: Api) -> Reply:
    """The default responder, a deterministic calculator-using model.

    If the last message carries tool results, it answers ``"The answer is R."`` (results
    joined with ``", "``). Otherwise, if the request offers a ``calculator`` tool and the
    last user text holds an arithmetic expression (digits and ``+ - * / % ^ ( )``), it
    calls ``calculator`` with ``{"expression": ...}``. Otherwise it answers
    ``"You said: TEXT"``.
    """
    results = tool_results(request, api)
    if results:
        return Reply(text=f"The answer is {', '.join(results)}.")
    text = last_user_text(request)
    if "calculator" in _tool_names(request, api):
        for match in _EXPRESSION.finditer(text):
            if _OPERATOR.search(match.group()):
                return Reply(tool_calls=[("calculator", {"expression": match.group().strip()})])
    return Reply(text=f"You said: {text}")


# -- embeddings -----------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def embedding(text: str, dimensions: int = 64) -> list[float]:
    """The server's deterministic embedding of ``text``: a hashed bag of words.

    Each lower-cased word adds +1 or -1 (both chosen by its BLAKE2b hash) to one of
    ``dimensions`` components; the vector is then scaled to length 1 (all zeros for a
    text without words). Texts sharing words have a high cosine similarity.
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[h % dimensions] += 1.0 if (h >> 40) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


# -- wire formats ---------------------------------------------------------------------------

_ANTHROPIC_STOP = {"end": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens", "refusal": "refusal"}
_OPENAI_STOP = {"end": "stop", "tool_use": "tool_calls", "max_tokens": "length", "refusal": "content_filter"}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    504: "timeout_error", 529: "overloaded_error",
}  # any other status: "api_error"
_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"), 429: ("requests", "rate_limit_exceeded"),
}  # any other status: ("server_error", None)
_PIECES = re.compile(r"\S+\s*|\s+")


def _pieces(text: str, count: int = 3) -> list[str]:
    """``text`` cut into ``count`` nearly equal pieces (the first may be ""), the way a
    provider streams a tool call's arguments."""
    size = max(1, -(-len(text) // count))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _arguments_text(arguments: Mapping[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    error_type = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_loopback"}


def _openai_error(status: int, message: str) -> dict[str, Any]:
    error_type, code = _OPENAI_ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


_ERRORS = {"anthropic": _anthropic_error, "openai": _openai_error}


class _Answer:
    """Builds the answer to ``request`` from a :class:`Reply`, in either API's format."""

    def __init__(self, server: LLMServer, api: Api, request: dict[str, Any], body_size: int, reply: Reply) -> None:
        self.request = request
        self.reply = reply
        self.model = request.get("model", "")
        self.number = next(server._ids)
        self.calls = [(f"{'toolu' if api == 'anthropic' else 'call'}_{self.number:06d}{i:02d}", name, _arguments_text(args))
                      for i, (name, args) in enumerate(reply.tool_calls)]
        if reply.usage is None:
            answered = len(reply.text) + sum(len(name) + len(args) for _, name, args in self.calls)
            self.usage = (max(1, body_size // 4), max(1, answered // 4))
        else:
            self.usage = reply.usage

    # Anthropic ---------------------------------------------------------------------------

    def _anthropic_usage(self, output_tokens: int) -> dict[str, int]:
        creation, read = self.reply.cache
        return {"input_tokens": self.usage[0], "cache_creation_input_tokens": creation,
                "cache_read_input_tokens": read, "output_tokens": output_tokens}

    def _anthropic_stop(self) -> dict[str, Any]:
        stop = self.reply.stop_reason
        details = None
        if stop == "refusal":
            details = {"type": "refusal", "category": None, "explanation": self.reply.text or None}
        return {"stop_reason": _ANTHROPIC_STOP.get(stop, stop), "stop_sequence": None, "stop_details": details}

    def _anthropic_text(self) -> str:
        return "" if self.reply.stop_reason == "refusal" else self.reply.text

    def anthropic_message(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self._anthropic_text():
            content.append({"type": "text", "text": self._anthropic_text()})
        for call_id, name, args in self.calls:
            try:
                value = json.loads(args)
            except ValueError:
                value = args
            content.append({"type": "tool_use", "id": call_id, "name": name, "input": value})
        return {"id": f"msg_{self.number:024d}", "type": "message", "role": "assistant", "model": self.model,
                "content": content, **self._anthropic_stop(), "usage": self._anthropic_usage(self.usage[1])}

    def anthropic_events(self) -> list[tuple[str, dict[str, Any]]]:
        start = self.anthropic_message()
        start.update(content=[], stop_reason=None, stop_details=None, usage=self._anthropic_usage(1))
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
        index = 0
        if self._anthropic_text():
            events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("ping", {"type": "ping"}))
            for piece in _PIECES.findall(self._anthropic_text()):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                       "delta": {"type": "text_delta", "text": piece}}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for call_id, name, args in self.calls:
            events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": call_id, "name": name, "input": {}}}))
            for piece in ["", *_pieces(args)]:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        stop = self._anthropic_stop()
        events.append(("message_delta", {"type": "message_delta", "delta": stop,
                                         "usage": self._anthropic_usage(self.usage[1])}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    # OpenAI ------------------------------------------------------------------------------

    def _openai_usage(self) -> dict[str, Any]:
        prompt = self.usage[0] + self.reply.cache[1]
        return {"prompt_tokens": prompt, "completion_tokens": self.usage[1],
                "total_tokens": prompt + self.usage[1],
                "prompt_tokens_details": {"cached_tokens": self.reply.cache[1], "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def _openai_head(self, kind: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{self.number:024d}", "object": kind, "created": int(time.time()),
                "model": self.model, "system_fingerprint": "fp_loopback"}

    def openai_completion(self) -> dict[str, Any]:
        stop = self.reply.stop_reason
        refused = stop == "refusal"
        message: dict[str, Any] = {"role": "assistant", "content": None if refused else (self.reply.text or None),
                                   "refusal": self.reply.text if refused else None, "annotations": []}
        if self.calls:
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                                     for call_id, name, args in self.calls]
        return {**self._openai_head("chat.completion"),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": _OPENAI_STOP.get(stop, stop)}],
                "usage": self._openai_usage(), "service_tier": "default"}

    def openai_chunks(self) -> list[dict[str, Any]]:
        head = self._openai_head("chat.completion.chunk")
        include_usage = bool((self.request.get("stream_options") or {}).get("include_usage"))
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}

        stop = self.reply.stop_reason
        field = "refusal" if stop == "refusal" else "content"
        chunks = [chunk({"role": "assistant", "content": None if field == "refusal" else "", "refusal": None})]
        chunks += [chunk({field: piece}) for piece in _PIECES.findall(self.reply.text)]
        for i, (call_id, name, args) in enumerate(self.calls):
            chunks.append(chunk({"tool_calls": [{"index": i, "id": call_id, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            chunks += [chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}) for piece in _pieces(args)]
        chunks.append(chunk({}, _OPENAI_STOP.get(stop, stop)))
        if include_usage and not self.reply.omit_stream_usage:
            chunks.append({**head, "choices": [], "usage": self._openai_usage()})
        return chunks


# -- request checks -------------------------------------------------------------------------


def _check_anthropic(request: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    """Why Anthropic would refuse ``request`` with a 400, or None."""
    if "anthropic-version" not in headers:
        return "anthropic-version: header is required"
    for key, kind in (("model", str), ("max_tokens", int), ("messages", list)):
        if not isinstance(request.get(key), kind):
            return f"{key}: Field required"
    if not request["messages"] or request["messages"][0].get("role") != "user":
        return "messages: the first message must use the \"user\" role"
    for tool in request.get("tools", ()):
        if tool.get("type", "custom") == "custom" and (
                not tool.get("name") or (tool.get("input_schema") or {}).get("type") != "object"):
            return "tools: each tool needs a name and an input_schema of type object"
    pending: set[str] = set()
    for i, message in enumerate(request["messages"]):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant") or not isinstance(content, (str, list)):
            return f"messages.{i}: a message needs role user or assistant and a content"
        blocks = content if isinstance(content, list) else []
        if role == "user":
            answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
            if answered - pending:
                return f"messages.{i}: unexpected tool_use_id found in tool_result blocks: {sorted(answered - pending)}"
            if pending - answered:
                return (f"messages.{i}: tool_use ids were found without tool_result blocks immediately "
                        f"after: {sorted(pending - answered)}")
            pending = set()
        else:
            pending = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
    return None


def _check_openai(request: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    """Why an OpenAI server would refuse ``request`` with a 400, or None."""
    if not isinstance(request.get("model"), str):
        return "you must provide a model parameter"
    if not isinstance(request.get("messages"), list) or not request["messages"]:
        return "'messages' must be a non-empty array"
    if "stream_options" in request and not request.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    for tool in request.get("tools", ()):
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            return "tools: each tool needs type 'function' and a function name"
    pending: set[str] = set()
    for i, message in enumerate(request["messages"]):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"messages[{i}].role: invalid value {role!r}"
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (f"messages[{i}]: messages with role 'tool' must be a response to a preceding "
                        "message with 'tool_calls'")
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return (f"messages[{i}]: an assistant message with 'tool_calls' must be followed by tool messages "
                    f"responding to each 'tool_call_id'; missing: {sorted(pending)}")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            if call.get("type") != "function" or not function.get("name") or not isinstance(
                    function.get("arguments"), str):
                return f"messages[{i}].tool_calls: each call needs type 'function', a name and arguments as a string"
            pending.add(call.get("id"))
    return None


def _check_key(api: Api, headers: Mapping[str, str], key: str | None) -> bool:
    if key is None:
        return True
    if api == "anthropic":
        return headers.get("x-api-key") == key or headers.get("authorization") == f"Bearer {key}"
    return headers.get("authorization") == f"Bearer {key}"


# -- HTTP -----------------------------------------------------------------------------------

_ROUTES: dict[str, Api] = {"/v1/messages": "anthropic", "/v1/chat/completions": "openai", "/v1/embeddings": "openai"}
_CHECKS = {"anthropic": _check_anthropic, "openai": _check_openai}


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Error"


def _head(status: int, content_type: str, headers: Mapping[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"content-type: {content_type}", "request-id: req_loopback",
             "x-request-id: req_loopback"]
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json_response(status: int, body: Any, headers: Mapping[str, str] = {}) -> bytes:
    data = json.dumps(body).encode()
    return _head(status, "application/json", headers, len(data)) + data


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(api: Api, event: str, data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return _chunk((f"event: {event}\ndata: {text}\n\n" if api == "anthropic" else f"data: {text}\n\n").encode())


_STREAM_HEAD = _head(200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"}, None)
_STREAM_END = b"0\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One client connection: reads requests one at a time (keep-alive, pipelining) and
    hands each to the server; a delayed answer holds the next request back."""

    def __init__(self, server: LLMServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.serve()

    def serve(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                self.finish(_json_response(411, _openai_error(411, "chunked request bodies are not supported")), True)
                return
            start = end + 4
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < start + length:
                return
            body = bytes(self.buffer[start:start + length])
            del self.buffer[:start + length]
            self.close_after = headers.get("connection", "").lower() == "close"
            self.server._handle(self, method, target.split("?", 1)[0], headers, body)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def finish(self, data: bytes, close: bool = False) -> None:
        """Write the rest of an answer; the connection then serves its next request."""
        self.write(data)
        if (close or self.close_after) and self.transport is not None:
            self.transport.close()
        self.busy = False

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.busy = False

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        """Run ``action`` after ``delay_s``; the connection reads no request till then."""
        self.busy = True

        def run() -> None:
            self.server._timers.discard(handle)
            action()
            self.serve()

        handle = self.server._loop.call_later(delay_s, run)
        self.server._timers.add(handle)


class LLMServer:
    """The scripted LLM server, on ``127.0.0.1`` at a free port, in a background thread.

    Use it as a context manager (``with LLMServer() as server:``), or call
    :meth:`start` and :meth:`close`::

        with LLMServer() as server:
            server.script(Reply(tool_calls=[("calculator", {"expression": "2+2"})]), Reply(text="4"))
            client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k")

    Args:
        responder: answers chat requests when no step is scripted: ``responder(request
            JSON, api) -> Reply``, called on the server's thread; default
            :func:`calculator_model`. Settable later as :attr:`responder`.
        api_key: when set (or set later as :attr:`api_key`), requests without it get a
            401 (Anthropic: ``x-api-key`` or ``authorization: Bearer``; OpenAI:
            ``authorization: Bearer``).
        embedding_dimensions: length of the embeddings' vectors when a request does not
            ask for ``dimensions``.

    Attributes:
        responder: see above.
        requests: every request to one of the API's paths, in order (:class:`RecordedRequest`).
    """

    def __init__(self, *, responder: Responder | None = None, api_key: str | None = None,
                 embedding_dimensions: int = 64) -> None:
        self.responder: Responder = responder or calculator_model
        self.api_key = api_key
        self.embedding_dimensions = embedding_dimensions
        self.requests: list[RecordedRequest] = []
        self._steps: collections.deque[Step] = collections.deque()
        self._ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread.

        Returns:
            The server itself.
        """
        if self._thread is not None:
            raise RuntimeError("the LLMServer is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self._port = sock.getsockname()[1]
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(loop.create_server(lambda: _Connection(self), sock=sock))
        self._server = server
        self._thread = threading.Thread(target=loop.run_forever, name=f"llm-server:{self._port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: close every connection, cancel delayed answers, end the thread."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop

        def stop() -> None:
            for timer in self._timers:
                timer.cancel()
            for connection in list(self._connections):
                if connection.transport is not None:
                    connection.transport.abort()
            self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(stop)
        self._thread.join()
        loop.run_until_complete(self._server.wait_closed())
        loop.close()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what tests use ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def anthropic_base_url(self) -> str:
        """The base URL for ``anthropic.AsyncAnthropic(base_url=...)`` (``ANTHROPIC_BASE_URL``)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """The base URL of the OpenAI API (``OPENAI_BASE_URL``), ending in ``/v1``."""
        return f"{self.url}/v1"

    def script(self, *steps: Step) -> None:
        """Queue steps, consumed in order by the next chat requests (a request the server
        refuses, 400 or 401, consumes none; embeddings requests consume none)."""
        for step in steps:
            if not isinstance(step, (Reply, Fault)):
                raise TypeError(f"a scripted step is a Reply or a Fault, not {type(step).__name__}")
        self._steps.extend(steps)

    @property
    def pending(self) -> int:
        """How many scripted steps are not consumed yet."""
        return len(self._steps)

    def reset(self) -> None:
        """Forget the script, the recorded requests and a custom responder."""
        self._steps.clear()
        self.requests.clear()
        self.responder = calculator_model

    # -- serving (on the server's thread) ----------------------------------------------------

    def _guard(self, conn: _Connection, action: Callable[[], None]) -> None:
        """Run ``action``; if it fails (a responder raising), answer 500 naming the error
        rather than dropping the connection, so the test sees what went wrong."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - any failure becomes the answer
            conn.finish(_json_response(500, _openai_error(500, f"the LLMServer failed: {exc!r}")))

    def _handle(self, conn: _Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self._guard(conn, lambda: self._route(conn, method, path, headers, body))

    def _route(self, conn: _Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        api = _ROUTES.get(path)
        if api is None:
            return conn.finish(_json_response(404, _openai_error(404, f"no route {path}")))
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        self.requests.append(RecordedRequest(api, path, request, headers))
        error = _ERRORS[api]
        if method != "POST":
            return conn.finish(_json_response(405, error(405, f"{method} is not allowed on {path}")))
        if not isinstance(request, dict):
            return conn.finish(_json_response(400, error(400, "the body is not a JSON object")))
        if not _check_key(api, headers, self.api_key):
            message = "invalid x-api-key" if api == "anthropic" else "Incorrect API key provided"
            return conn.finish(_json_response(401, error(401, message)))
        if path == "/v1/embeddings":
            return conn.finish(self._embeddings(request))
        problem = _CHECKS[api](request, headers)
        if problem is not None:
            return conn.finish(_json_response(400, error(400, problem)))
        step = self._steps.popleft() if self._steps else None
        if isinstance(step, Fault):
            if step.delay_s > 0:
                return conn.later(step.delay_s, lambda: self._guard(
                    conn, lambda: self._fault(conn, api, request, len(body), step)))
            return self._fault(conn, api, request, len(body), step)
        self._answer(conn, api, request, len(body), step)

    def _answer(self, conn: _Connection, api: Api, request: dict[str, Any], body_size: int,
                reply: Reply | None) -> None:
        answer = _Answer(self, api, request, body_size, reply or self.responder(request, api))
        if not request.get("stream"):
            message = answer.anthropic_message() if api == "anthropic" else answer.openai_completion()
            return conn.finish(_json_response(200, message))
        conn.finish(_STREAM_HEAD + b"".join(self._events(api, answer)) + _STREAM_END)

    @staticmethod
    def _events(api: Api, answer: _Answer) -> list[bytes]:
        if api == "anthropic":
            return [_sse(api, event, data) for event, data in answer.anthropic_events()]
        return [_sse(api, "", chunk) for chunk in answer.openai_chunks()] + [_sse(api, "", "[DONE]")]

    def _fault(self, conn: _Connection, api: Api, request: dict[str, Any], body_size: int, fault: Fault) -> None:
        stream = bool(request.get("stream"))
        if fault.status is None and not fault.malformed and not fault.drop:
            return self._answer(conn, api, request, body_size, None)
        if fault.in_stream and stream:
            events = self._events(api, _Answer(self, api, request, body_size, self.responder(request, api)))
            conn.write(_STREAM_HEAD + events[0])
            if fault.drop:
                return conn.drop()
            message = fault.message or _phrase(fault.status or 500)
            if api == "anthropic":
                return conn.finish(_sse(api, "error", _anthropic_error(fault.status or 500, message)) + _STREAM_END)
            return conn.finish(_sse(api, "", _openai_error(fault.status or 500, message)) + _sse(api, "", "[DONE]")
                               + _STREAM_END)
        if fault.drop:
            return conn.drop()
        if fault.malformed:
            if not stream:
                broken = b'{"id": "msg_broken", "type": "message", "content": [{"type": "te'
                return conn.finish(_head(200, "application/json", {}, len(broken)) + broken)
            first = self._events(api, _Answer(self, api, request, body_size, self.responder(request, api)))[0]
            broken = (b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "del\n\n'
                      if api == "anthropic" else b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"cont\n\n')
            return conn.finish(_STREAM_HEAD + first + _chunk(broken) + _STREAM_END)
        headers = dict(fault.headers)
        if fault.retry_after_s is not None:
            headers["retry-after"] = f"{fault.retry_after_s:g}"
        status = fault.status or 500
        message = fault.message or _phrase(status)
        conn.finish(_json_response(status, _ERRORS[api](status, message), headers))

    def _embeddings(self, request: dict[str, Any]) -> bytes:
        inputs = request.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
            return _json_response(400, _openai_error(400, "'input' must be a string or an array of strings"))
        dimensions = request.get("dimensions") or self.embedding_dimensions
        data = []
        for i, text in enumerate(inputs):
            vector: Any = embedding(text, dimensions)
            if request.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(len(_WORD.findall(text)) for text in inputs)
        return _json_response(200, {"object": "list", "data": data, "model": request.get("model", ""),
                                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
