"""What the LLM adapters share: reading a tool call's arguments, a ``retry-after`` header
and an error answer, and turning a failure into the :class:`~namu.errors.LLMError`
subclass that tells the gate around the call whether a retry may help.

Error messages name the provider, the model, the HTTP status, the provider's error type
and message (cut to :data:`DETAIL_CHARS` characters) and its request id; never a
header, and never the API key: a server that echoes the key (some do, in a 401's
message) has it replaced by ``***``.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from namu.errors import (
    LLMError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitError,
)
from namu.runtime.llm.messages import LLMResponse, TextDelta, ToolCallEvent
from namu.runtime.llm.providers import EventSink

__all__ = [
    "DETAIL_CHARS",
    "RAW_ARGUMENTS_KEY",
    "error_for_status",
    "parse_arguments",
    "report",
    "response_error",
    "retry_after_s",
    "unavailable_error",
]

#: The key under which :func:`parse_arguments` keeps arguments that are not a JSON object.
RAW_ARGUMENTS_KEY = "_raw"
#: How much of a provider's error message an error message quotes.
DETAIL_CHARS = 300

# error types (Anthropic's ``error.type``, OpenAI's ``error.type`` or ``error.code``) that
# say the provider is overloaded or rate limiting, and those that say the request is at fault
_RATE_LIMITED = frozenset({"rate_limit_error", "overloaded_error", "rate_limit_exceeded"})
_REFUSED = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "request_too_large", "billing_error", "insufficient_quota", "invalid_api_key",
})


def parse_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments, from the JSON text the model wrote.

    Models (local ones especially) sometimes write invalid JSON. The call is kept rather
    than the response failing: a retry would cost a call and may not help, while the
    model can fix its call once told what was wrong. So text that is not a JSON object
    comes back as ``{RAW_ARGUMENTS_KEY: text}``, for the tool dispatch to answer with an
    error result quoting it.

    Args:
        text: the arguments' JSON text ("" means no arguments).

    Returns:
        The arguments object, or ``{"_raw": text}``.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {RAW_ARGUMENTS_KEY: text}
    return value if isinstance(value, dict) else {RAW_ARGUMENTS_KEY: text}


def report(response: LLMResponse, on_event: EventSink | None) -> None:
    """Tell ``on_event`` of a response that was not streamed: its whole text as one
    :class:`~namu.runtime.llm.messages.TextDelta`, then a
    :class:`~namu.runtime.llm.messages.ToolCallEvent` per call."""
    if on_event is None:
        return
    if response.text:
        on_event(TextDelta(response.text))
    for call in response.tool_calls:
        on_event(ToolCallEvent(call))


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """How long a response asks the client to wait, in seconds, or None.

    Reads ``retry-after-ms`` (milliseconds, OpenAI), then ``retry-after``: seconds, or an
    HTTP date (RFC 9110 section 10.2.3; a date in the past gives 0).
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_class(status: int | None, error_type: str) -> type[LLMError]:
    if error_type == "insufficient_quota":  # a 429 from OpenAI that waiting does not cure
        return ProviderRequestError
    if status in (429, 529) or error_type in _RATE_LIMITED:
        return RateLimitError
    if status is None:  # an error event inside a stream that began well
        return ProviderRequestError if error_type in _REFUSED else ProviderUnavailableError
    if status >= 500 or status == 408:
        return ProviderUnavailableError
    return ProviderRequestError


def _error_detail(body: Any) -> tuple[str, str]:
    """``(type, message)`` of an error body: Anthropic's ``{"error": {"type",
    "message"}}``, OpenAI's ``{"error": {"type", "code", "message"}}``, vLLM's flat
    ``{"type", "message"}``, Ollama's ``{"error": "text"}``, or text (an HTML page)."""
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text)
        except ValueError:
            return "", " ".join(text.split())
    if not isinstance(body, dict):
        return "", str(body)
    error = body.get("error", body)
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        return "", str(error)
    code = error.get("code")
    error_type = error.get("type") or ""
    if isinstance(code, str) and (code in _RATE_LIMITED or code in _REFUSED or not error_type):
        error_type = code
    return str(error_type), str(error.get("message") or "")


def _label(provider: str, model: str) -> str:
    return f"{provider} model {model!r}"


def _redacted(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "..."


def error_for_status(
    *,
    provider: str,
    model: str,
    status: int | None,
    body: Any,
    headers: Mapping[str, str],
    secret: str | None,
) -> LLMError:
    """The error for a provider's error answer.

    429 and Anthropic's 529 (or an error type saying rate limit or overloaded) give
    :class:`~namu.errors.RateLimitError` with ``retry_after_s`` from the headers; 5xx and
    408 :class:`~namu.errors.ProviderUnavailableError`; other 4xx (and OpenAI's
    ``insufficient_quota`` 429) :class:`~namu.errors.ProviderRequestError`.

    Args:
        provider: the provider's name, for the message.
        model: the model called.
        status: the HTTP status, or None for an error event in a stream that had begun
            with 200 (then the error type decides).
        body: the error body: bytes, text, or decoded JSON.
        headers: the response's headers (``retry-after``, the request id).
        secret: the API key, removed from the message if the provider echoed it.

    Returns:
        The error, to be raised.
    """
    error_type, message = _error_detail(body)
    cls = _error_class(status, error_type)
    where = f"HTTP {status}" if status is not None else "error event in the stream"
    text = f"{_label(provider, model)}: {where}"
    if error_type:
        text += f" {error_type}"
    if message:
        text += f": {_redacted(message, secret)}"
    wait = retry_after_s(headers) if cls is RateLimitError else None
    if wait is not None:
        text += f" (retry after {wait:g} s)"
    request_id = headers.get("request-id") or headers.get("x-request-id")
    if request_id:
        text += f" [request id {_redacted(request_id, secret)}]"
    return cls(text, provider=provider, model=model, status=status, retry_after_s=wait)


def unavailable_error(*, provider: str, model: str, timeout_s: float | None, cause: BaseException) -> LLMError:
    """The error for a request that got no (complete) answer: a timeout when ``timeout_s``
    is given, else a refused, reset or dropped connection.

    Returns:
        A :class:`~namu.errors.ProviderUnavailableError`, to be raised from ``cause``.
    """
    if timeout_s is not None:
        text = f"{_label(provider, model)}: no answer within the timeout of {timeout_s:g} s"
    else:
        text = f"{_label(provider, model)}: the connection failed ({type(cause).__name__}: {cause})"
    return ProviderUnavailableError(text, provider=provider, model=model)


def response_error(*, provider: str, model: str, what: str) -> LLMError:
    """The error for an answer that cannot be read (``what`` says how it is broken).

    Returns:
        A :class:`~namu.errors.ProviderResponseError`, to be raised from the parse error.
    """
    return ProviderResponseError(f"{_label(provider, model)}: unreadable answer: {what}", provider=provider, model=model)
