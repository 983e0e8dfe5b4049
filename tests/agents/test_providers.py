"""The LLM adapters against the loopback LLM server: the real ``anthropic`` SDK and
namu's ``httpx`` adapter speaking the real protocols, plain and streamed."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from namu.errors import (
    LLMError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitError,
)
from namu.runtime.llm.messages import (
    AgentEvent,
    LLMRequest,
    LLMResponse,
    Message,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    ToolSpec,
    Usage,
)
from namu.runtime.llm.providers import Endpoint, Provider, provider_class
from namu.runtime.llm.wire import RAW_ARGUMENTS_KEY
from tests.agents.llm_server import Fault, LLMServer, Reply

KEY = "sk-loopback-secret-0123456789abcdef"
MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4.1-mini"}
CALCULATOR = ToolSpec(
    "calculator",
    "Evaluates an arithmetic expression.",
    {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
APIS = ["anthropic", "openai"]
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API keys set, and no base URL from the machine's environment."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for variable in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(params=APIS)
def api(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=[False, True], ids=["plain", "stream"])
def stream(request: pytest.FixtureRequest) -> bool:
    return request.param


def provider(api: str, server: LLMServer, *, timeout_s: float = 10.0, base_url: str | None = "server") -> Provider:
    if base_url == "server":
        base_url = server.anthropic_base_url if api == "anthropic" else server.openai_base_url
    return provider_class(api)(Endpoint(api, base_url=base_url, timeout_s=timeout_s))


def run(llm: Provider, body: Callable[[Provider], Awaitable[T]]) -> T:
    """Run ``body(llm)`` on a fresh event loop, closing the provider's client after."""

    async def main() -> T:
        try:
            return await body(llm)
        finally:
            await llm.aclose()

    return asyncio.run(main())


def ask(api: str, stream: bool, *messages: Message, tools: tuple[ToolSpec, ...] = (CALCULATOR,),
        **fields: Any) -> LLMRequest:
    return LLMRequest(MODELS[api], "You are careful.", messages, tools, max_tokens=256, stream=stream, **fields)


def complete(llm: Provider, request: LLMRequest) -> tuple[LLMResponse, list[AgentEvent]]:
    events: list[AgentEvent] = []

    async def body(llm: Provider) -> LLMResponse:
        return await llm.complete(request, events.append)

    return run(llm, body), events


def failure(llm: Provider, request: LLMRequest) -> LLMError:
    with pytest.raises(LLMError) as caught:
        complete(llm, request)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.args)
    return caught.value


def text_of(events: list[AgentEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# -- conversations --------------------------------------------------------------------------


def test_multi_step_tool_conversation(llm_server: LLMServer, api: str, stream: bool) -> None:
    question = Message("user", "What is 25 * 47?")
    events: list[list[AgentEvent]] = [[], []]

    async def conversation(llm: Provider) -> tuple[LLMResponse, LLMResponse]:
        first = await llm.complete(ask(api, stream, question), events[0].append)
        (call,) = first.tool_calls
        result = Message("tool", tool_results=(ToolResult(call.id, call.name, "1175"),))
        second = await llm.complete(ask(api, stream, question, first.message(), result), events[1].append)
        return first, second

    first, second = run(provider(api, llm_server), conversation)

    call = first.tool_calls[0]
    assert (call.name, call.arguments) == ("calculator", {"expression": "25 * 47"})
    assert (first.stop_reason, first.raw_stop_reason) == ("tool_use", "tool_use" if api == "anthropic" else "tool_calls")
    assert events[0] == [ToolCallEvent(call)]
    assert second.text == "The answer is 1175." and second.tool_calls == ()
    assert second.stop_reason == "end" and second.model == MODELS[api]
    assert all(isinstance(e, TextDelta) for e in events[1]) and text_of(events[1]) == second.text
    assert len(events[1]) == (4 if stream else 1)  # streamed word by word

    sent = [r.json for r in llm_server.requests]
    assert [bool(body.get("stream")) for body in sent] == [stream, stream]
    if api == "anthropic":
        assert sent[0]["system"] == "You are careful."
        assert sent[0]["tools"] == [{"name": "calculator", "description": CALCULATOR.description,
                                     "input_schema": CALCULATOR.input_schema}]
        assert sent[1]["messages"][1:] == [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": "calculator",
                                               "input": {"expression": "25 * 47"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "1175",
                                          "is_error": False}]},
        ]
    else:
        assert sent[0]["messages"][0] == {"role": "system", "content": "You are careful."}
        assert sent[0]["tools"] == [{"type": "function", "function": {
            "name": "calculator", "description": CALCULATOR.description, "parameters": CALCULATOR.input_schema}}]
        assert sent[1]["messages"][2:] == [
            {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function", "function": {
                "name": "calculator", "arguments": '{"expression": "25 * 47"}'}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "1175"},
        ]
        assert sent[0].get("stream_options") == ({"include_usage": True} if stream else None)


def test_text_then_tool_calls_are_reported_in_order(llm_server: LLMServer, api: str, stream: bool) -> None:
    llm_server.script(Reply(text="Let me compute both.", tool_calls=[
        ("calculator", {"expression": "1+1"}), ("calculator", {"expression": "2*3"})]))
    response, events = complete(provider(api, llm_server), ask(api, stream, Message("user", "1+1 and 2*3?")))

    assert response.text == "Let me compute both."
    assert [c.arguments for c in response.tool_calls] == [{"expression": "1+1"}, {"expression": "2*3"}]
    assert len({c.id for c in response.tool_calls}) == 2
    kinds = [e.kind for e in events]
    texts = kinds.count("text_delta")
    assert kinds == ["text_delta"] * texts + ["tool_call", "tool_call"] and texts == (4 if stream else 1)
    assert [e.call for e in events if isinstance(e, ToolCallEvent)] == list(response.tool_calls)


def test_failed_tool_result_is_sent_as_an_error(llm_server: LLMServer, api: str) -> None:
    call = ToolCall("c1", "calculator", {"expression": "1/0"})
    transcript = (Message("user", "1/0?"), Message("assistant", "", (call,)),
                  Message("tool", tool_results=(ToolResult("c1", "calculator", "division by zero", is_error=True),)))
    complete(provider(api, llm_server), ask(api, False, *transcript))

    last = llm_server.requests[-1].json["messages"][-1]
    if api == "anthropic":
        assert last["content"] == [{"type": "tool_result", "tool_use_id": "c1", "content": "division by zero",
                                    "is_error": True}]
    else:
        assert last == {"role": "tool", "tool_call_id": "c1", "content": "Error: division by zero"}


def test_temperature_and_params_are_sent(llm_server: LLMServer, api: str) -> None:
    request = ask(api, False, Message("user", "hi"), temperature=0.0, params=(("top_p", 0.5),))
    complete(provider(api, llm_server), request)

    body = llm_server.requests[-1].json
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.0, 0.5, 256)


def test_malformed_tool_arguments_are_kept_raw(llm_server: LLMServer, api: str, stream: bool) -> None:
    llm_server.script(Reply(tool_calls=[("calculator", '{"expression": "2+')]))
    response, _ = complete(provider(api, llm_server), ask(api, stream, Message("user", "2+2?")))

    assert response.tool_calls[0].arguments == {RAW_ARGUMENTS_KEY: '{"expression": "2+'}


# -- usage ----------------------------------------------------------------------------------


def test_usage_with_cache_tokens(llm_server: LLMServer, api: str, stream: bool) -> None:
    llm_server.script(Reply(text="Hello there.", usage=(100, 20), cache=(30, 40)))
    response, _ = complete(provider(api, llm_server), ask(api, stream, Message("user", "hi")))

    # OpenAI reports no cache writes; its prompt_tokens (140) include the 40 cache reads
    assert response.usage == (Usage(100, 20, 30, 40) if api == "anthropic" else Usage(100, 20, 0, 40))


def test_anthropic_stream_usage_is_cumulative_not_added(llm_server: LLMServer) -> None:
    llm_server.script(Reply(text="Hello there.", usage=(100, 20), cache=(30, 40)))
    with httpx.Client() as client:  # what the stream carries: totals in message_start and in message_delta
        raw = client.post(f"{llm_server.anthropic_base_url}/v1/messages", headers={"anthropic-version": "2023-06-01"},
                          json={"model": "m", "max_tokens": 9, "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]}).text
    usages = [json.loads(line[6:]).get("message", {}).get("usage") or json.loads(line[6:]).get("usage")
              for line in raw.splitlines() if '"message_start"' in line or '"message_delta"' in line]
    assert [u["input_tokens"] for u in usages] == [100, 100] and usages[1]["output_tokens"] == 20

    llm_server.script(Reply(text="Hello there.", usage=(100, 20), cache=(30, 40)))
    response, _ = complete(provider("anthropic", llm_server), ask("anthropic", True, Message("user", "hi")))
    assert response.usage == Usage(100, 20, 30, 40)


def test_openai_stream_without_usage_chunk_is_incomplete(llm_server: LLMServer) -> None:
    llm_server.script(Reply(text="one two three", usage=(50, 7), omit_stream_usage=True))
    response, _ = complete(provider("openai", llm_server), ask("openai", True, Message("user", "count")))

    assert llm_server.requests[-1].json["stream_options"] == {"include_usage": True}
    assert response.text == "one two three"
    # what is known: three content deltas, each at least one token; the input is unknown
    assert response.usage == Usage(0, 3, 0, 0, complete=False)


# -- stop reasons ---------------------------------------------------------------------------


def test_max_tokens_stop(llm_server: LLMServer, api: str, stream: bool) -> None:
    llm_server.script(Reply(text="The answer is a long", stop="max_tokens"))
    response, _ = complete(provider(api, llm_server), ask(api, stream, Message("user", "explain")))

    assert (response.stop_reason, response.raw_stop_reason) == ("max_tokens", "max_tokens" if api == "anthropic" else "length")
    assert response.text == "The answer is a long" and response.refusal == ""


def test_refusal_stop(llm_server: LLMServer, api: str, stream: bool) -> None:
    llm_server.script(Reply(text="I can't help with that.", stop="refusal"))
    response, events = complete(provider(api, llm_server), ask(api, stream, Message("user", "something bad")))

    assert response.stop_reason == "refusal"
    assert response.raw_stop_reason == ("refusal" if api == "anthropic" else "content_filter")
    assert response.refusal == "I can't help with that." and response.text == "" and events == []


def test_unknown_stop_reason_is_other(llm_server: LLMServer, api: str) -> None:
    llm_server.script(Reply(text="paused", stop="pause_turn"))
    response, _ = complete(provider(api, llm_server), ask(api, False, Message("user", "go")))

    assert (response.stop_reason, response.raw_stop_reason) == ("other", "pause_turn")


# -- failures -------------------------------------------------------------------------------

FAULTS = [
    pytest.param(Fault(status=429, retry_after_s=0.05), RateLimitError, 429, id="429"),
    pytest.param(Fault(status=529), RateLimitError, 529, id="529-overloaded"),
    pytest.param(Fault(status=500), ProviderUnavailableError, 500, id="500"),
    pytest.param(Fault(status=503, delay_s=0.01), ProviderUnavailableError, 503, id="503-late"),
    pytest.param(Fault(status=400, message="messages: bad"), ProviderRequestError, 400, id="400"),
    pytest.param(Fault(status=404), ProviderRequestError, 404, id="404"),
    pytest.param(Fault(malformed=True), ProviderResponseError, None, id="malformed"),
    pytest.param(Fault(drop=True), ProviderUnavailableError, None, id="drop"),
]


@pytest.mark.parametrize(("fault", "error", "status"), FAULTS)
def test_fault_maps_to_error(llm_server: LLMServer, api: str, stream: bool, fault: Fault,
                             error: type[LLMError], status: int | None) -> None:
    llm_server.script(fault, Reply(text="recovered"))
    llm = provider(api, llm_server)
    request = ask(api, stream, Message("user", "hi"))

    async def body(llm: Provider) -> LLMResponse:
        with pytest.raises(LLMError) as caught:
            await llm.complete(request)
        err = caught.value
        assert type(err) is error and (err.status, err.provider, err.model) == (status, api, MODELS[api])
        assert err.retry_after_s == fault.retry_after_s and err.retryable == (error is not ProviderRequestError)
        assert KEY not in str(err) and "x-api-key" not in str(err).lower() and "authorization" not in str(err).lower()
        return await llm.complete(request)  # the same client goes on after the failure

    assert run(llm, body).text == "recovered"


@pytest.mark.parametrize(("fault", "errors"), [
    pytest.param(Fault(status=429, in_stream=True), (RateLimitError, RateLimitError), id="rate-limited"),
    # Anthropic's overloaded_error; OpenAI has no 529, the server sends a server_error
    pytest.param(Fault(status=529, in_stream=True), (RateLimitError, ProviderUnavailableError), id="overloaded"),
    pytest.param(Fault(status=500, in_stream=True), (ProviderUnavailableError,) * 2, id="server-error"),
    pytest.param(Fault(status=400, in_stream=True), (ProviderRequestError,) * 2, id="bad-request"),
    pytest.param(Fault(drop=True, in_stream=True), (ProviderUnavailableError,) * 2, id="drop"),
])
def test_fault_inside_a_stream(llm_server: LLMServer, api: str, fault: Fault,
                               errors: tuple[type[LLMError], type[LLMError]]) -> None:
    llm_server.script(fault)
    err = failure(provider(api, llm_server), ask(api, True, Message("user", "hi")))

    assert type(err) is errors[APIS.index(api)] and err.status is None


def test_retry_after_as_http_date(llm_server: LLMServer, api: str) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    llm_server.script(Fault(status=429, headers={"retry-after": when}))
    err = failure(provider(api, llm_server), ask(api, False, Message("user", "hi")))

    assert isinstance(err, RateLimitError) and 25 < err.retry_after_s <= 30


def test_slow_answer_past_the_timeout(llm_server: LLMServer, api: str, stream: bool) -> None:
    llm_server.script(Fault(delay_s=5.0))
    err = failure(provider(api, llm_server, timeout_s=0.1), ask(api, stream, Message("user", "hi")))

    assert isinstance(err, ProviderUnavailableError) and "timeout of 0.1 s" in str(err)


def test_late_answer_within_the_timeout(llm_server: LLMServer, api: str) -> None:
    llm_server.script(Fault(delay_s=0.02))
    response, _ = complete(provider(api, llm_server), ask(api, False, Message("user", "1+2")))

    assert response.tool_calls[0].arguments == {"expression": "1+2"}  # the default model answered


def test_connection_refused(api: str) -> None:
    with LLMServer() as server:
        llm = provider(api, server)
    err = failure(llm, ask(api, False, Message("user", "hi")))

    assert isinstance(err, ProviderUnavailableError) and "connection failed" in str(err)


# -- keys and base URLs ---------------------------------------------------------------------


def test_api_key_is_sent_in_its_header(llm_server: LLMServer, api: str) -> None:
    llm_server.api_key = KEY
    complete(provider(api, llm_server), ask(api, False, Message("user", "hi")))

    headers = llm_server.requests[-1].headers
    # the anthropic SDK sends the key as a bearer token since 2.0, as x-api-key before
    assert headers.get("authorization") == f"Bearer {KEY}" or (api == "anthropic" and headers.get("x-api-key") == KEY)


def test_wrong_api_key_is_refused_without_showing_it(llm_server: LLMServer, api: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    llm_server.api_key = "the-right-key"
    monkeypatch.setenv("ANTHROPIC_API_KEY" if api == "anthropic" else "OPENAI_API_KEY", KEY)
    err = failure(provider(api, llm_server), ask(api, False, Message("user", "hi")))

    assert isinstance(err, ProviderRequestError) and err.status == 401 and not err.retryable


def test_echoed_api_key_is_redacted(llm_server: LLMServer, api: str) -> None:
    llm_server.script(Fault(status=401, message=f"Incorrect API key provided: {KEY}"))
    err = failure(provider(api, llm_server), ask(api, False, Message("user", "hi")))

    assert "Incorrect API key provided: ***" in str(err)


def test_anthropic_key_variable_unset(llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    err = failure(provider("anthropic", llm_server), ask("anthropic", False, Message("user", "hi")))

    assert isinstance(err, ProviderRequestError) and "ANTHROPIC_API_KEY" in str(err)
    assert llm_server.requests == []


def test_openai_without_key_sends_no_authorization(llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    response, _ = complete(provider("openai", llm_server), ask("openai", False, Message("user", "hi")))

    assert response.text == "You said: hi"
    assert "authorization" not in llm_server.requests[-1].headers


def test_base_url_from_the_environment(llm_server: LLMServer, api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if api == "anthropic":
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm_server.anthropic_base_url)
    else:
        monkeypatch.setenv("OPENAI_BASE_URL", llm_server.openai_base_url)
    response, _ = complete(provider(api, llm_server, base_url=None), ask(api, False, Message("user", "hi")))

    assert response.text == "You said: hi" and len(llm_server.requests) == 1
