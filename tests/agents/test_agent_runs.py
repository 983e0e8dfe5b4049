"""Agents run end to end against the loopback LLM server: both providers, streamed and
not, tools, resilience (retries, retry-after, the breaker, fallbacks), hard limits,
agents inside workflows, and the run history."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

import namu
from namu.errors import (
    AgentLimitError,
    CircuitOpenError,
    ProviderRequestError,
    TaskError,
)
from namu.runtime.llm.messages import (
    Final,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
    UsageEvent,
)
from namu.runtime.tasks.breakers import reset_breakers
from tests.agents.llm_server import Fault, LLMServer, Reply

KEY = "sk-test-0123456789abcdef-never-recorded"
PROVIDERS = ["anthropic", "openai"]
MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o-mini"}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMU_TEST_LLM_KEY", KEY)
    monkeypatch.setenv("NAMU_RUN_HISTORY", str(tmp_path / "runs.sqlite"))
    reset_breakers()


def agent_file(tmp_path: Path, server: LLMServer, provider: str = "anthropic", extra: str = "", *,
               tools: str = "  - calculator\n", llm_extra: str = "", name: str = "calc",
               retry: str = "{max_retries: 2, backoff_base_s: 0.001, backoff_max_s: 0.01}") -> Path:
    base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    text = (
        f"name: {name}\n"
        "llm:\n"
        f"  provider: {provider}\n"
        f"  model: {MODELS[provider]}\n"
        f"  base_url: {base_url}\n"
        "  api_key_env: NAMU_TEST_LLM_KEY\n"
        "  max_tokens: 256\n"
        f"  retry: {retry}\n"
        f"{textwrap.indent(textwrap.dedent(llm_extra), '  ')}"
        "system_prompt: You are a careful assistant. Use the calculator for any arithmetic.\n"
        f"tools:\n{tools}"
        f"{textwrap.dedent(extra)}"
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_multi_step_tool_conversation(tmp_path: Path, llm_server: LLMServer, provider: str, stream: bool) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, provider, llm_extra=f"stream: {str(stream).lower()}\n"))
    result = agent.run("What is 25 * 47?")
    assert result.answer == "The answer is 1175."
    assert (result.stop, result.iterations) == ("answer", 2)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("calculator", {"expression": "25 * 47"})]
    assert [r.content for r in result.tool_results] == ["1175"]
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0 and result.usage.complete
    assert result.cost_usd is not None and result.cost_usd > 0
    requests = llm_server.requests
    assert len(requests) == 2 and all(r.stream == stream for r in requests)
    tool = requests[0].json["tools"][0]
    assert (tool["name"] if provider == "anthropic" else tool["function"]["name"]) == "calculator"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_yields_events_in_order(tmp_path: Path, llm_server: LLMServer, provider: str) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, provider))
    events = list(agent.stream("What is 6 * 7?"))
    kinds = [type(e) for e in events]
    assert kinds[0] is ToolCallEvent and kinds[1] is UsageEvent and kinds[2] is ToolResultEvent
    assert kinds[-1] is Final and kinds[-2] is UsageEvent
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer is 42."
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # it arrived in pieces
    assert events[-1].result.answer == "The answer is 42."
    assert all(r.stream for r in llm_server.requests)


def test_astream_and_arun(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server))

    async def main() -> tuple[list[Any], Any]:
        return [event async for event in agent.astream("What is 1 + 1?")], await agent.arun("What is 2 + 2?")

    events, result = asyncio.run(main())
    assert isinstance(events[-1], Final) and events[-1].result.answer == "The answer is 2."
    assert result.answer == "The answer is 4."


def test_an_agent_is_called_for_its_answer(tmp_path: Path, llm_server: LLMServer) -> None:
    assert namu.agent(agent_file(tmp_path, llm_server))("What is 3 * 3?") == "The answer is 9."


@pytest.mark.parametrize("fault", [
    Fault(status=429, retry_after_s=0.01),
    Fault(status=529),
    Fault(status=500),
    Fault(malformed=True),
    Fault(drop=True),
    Fault(delay_s=2.0),
], ids=["429-retry-after", "529", "500", "malformed", "dropped", "slow"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_transient_failures_are_retried(tmp_path: Path, llm_server: LLMServer, provider: str, fault: Fault) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, provider, llm_extra="timeout_s: 0.5\n"))
    llm_server.script(fault)
    assert agent.run("What is 2 * 21?").answer == "The answer is 42."
    assert len(llm_server.requests) == 3  # the failed attempt, then the two turns


def test_a_refused_request_is_not_retried(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server))
    llm_server.script(Fault(status=400, message="bad request"))
    with pytest.raises(TaskError) as info:
        agent.run("What is 1 + 1?")
    assert isinstance(info.value.__cause__, ProviderRequestError)
    assert len(llm_server.requests) == 1
    assert KEY not in str(info.value) and KEY not in str(info.value.__cause__)


def test_a_retry_never_runs_a_tool_call_again(tmp_path: Path, llm_server: LLMServer) -> None:
    (tmp_path / "counting.py").write_text(textwrap.dedent("""\
        CALLS = []

        def pay(amount: int) -> str:
            \"\"\"Pay an amount.\"\"\"
            CALLS.append(amount)
            return f"paid {amount}"
        """))
    agent = namu.agent(agent_file(tmp_path, llm_server, tools="  - python: counting.py:pay\n"))
    llm_server.script(Reply(tool_calls=[("pay", {"amount": 5})]), Fault(status=500), Fault(status=503), Reply(text="Done."))
    result = agent.run("Pay 5.")
    assert result.answer == "Done."
    assert [r.content for r in result.tool_results] == ["paid 5"]
    import sys

    assert sys.modules["counting"].CALLS == [5]  # the two failed LLM attempts did not pay again


def test_the_circuit_breaker_opens_and_the_fallback_answers(tmp_path: Path, llm_server: LLMServer) -> None:
    path = agent_file(tmp_path, llm_server, llm_extra="""\
        circuit_breaker: {failure_threshold: 2, cooldown_s: 60}
        fallback:
          - model: claude-haiku-4-5
        """, retry="{max_retries: 0}")
    agent = namu.agent(path)

    def responder(request: dict[str, Any], api: str) -> Reply:
        if request["model"] == "claude-sonnet-4-5":
            raise AssertionError("the open breaker let a call through")
        return Reply(text=f"answered by {request['model']}")

    llm_server.responder = responder
    fallback_answer = Reply(text="answered by claude-haiku-4-5")
    llm_server.script(Fault(status=500), fallback_answer, Fault(status=500), fallback_answer)
    assert agent.run("hi").answer == "answered by claude-haiku-4-5"  # 500 -> fallback
    assert agent.run("hi").answer == "answered by claude-haiku-4-5"  # 500 again: the breaker opens
    assert agent.run("hi").answer == "answered by claude-haiku-4-5"  # open: no call to the primary
    assert [r.json["model"] for r in llm_server.requests] == [
        "claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-haiku-4-5"]


def test_an_open_breaker_without_fallback_fails_fast(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, llm_extra="circuit_breaker: {failure_threshold: 1, cooldown_s: 60}\n", retry="{max_retries: 0}"))
    llm_server.script(Fault(status=500))
    with pytest.raises(TaskError):
        agent.run("hi")
    with pytest.raises(TaskError) as info:
        agent.run("hi")
    assert isinstance(info.value.__cause__, CircuitOpenError)
    assert len(llm_server.requests) == 1


def test_a_tool_error_goes_back_to_the_model(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server))
    llm_server.script(Reply(tool_calls=[("calculator", {"expression": "1/0"})]), Reply(tool_calls=[("nope", {})]), Reply(text="Cannot."))
    result = agent.run("What is 1/0?")
    assert result.answer == "Cannot."
    assert [r.is_error for r in result.tool_results] == [True, True]
    assert "division by zero" in result.tool_results[0].content.lower()
    assert "unknown tool 'nope'; the tools are: calculator" in result.tool_results[1].content


@pytest.mark.parametrize(("limits", "limit"), [
    ("max_iterations: 2", "max_iterations"),
    ("max_tool_calls: 1", "max_tool_calls"),
    ("max_tool_errors: 0", "max_tool_errors"),
    ("max_tokens: 10", "max_tokens_total"),
    ("max_cost_usd: 0.000001", "max_cost_usd"),
])
def test_limits_are_hard_stops_that_keep_the_transcript(tmp_path: Path, llm_server: LLMServer, limits: str, limit: str) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, extra=f"limits: {{{limits}}}\n"))
    llm_server.responder = lambda request, api: Reply(tool_calls=[("calculator", {"expression": "1/0"})])
    with pytest.raises(AgentLimitError) as info:
        agent.run("loop forever")
    error = info.value
    assert error.limit == limit
    assert f"stopped by limits.{limit.replace('_total', '')}" in str(error) and "spent" in str(error)
    partial = error.result
    assert partial.stop == limit and partial.messages[0].content == "loop forever"
    assert partial.iterations == len(llm_server.requests) <= 2


def test_the_run_timeout_is_a_hard_stop(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, extra="limits: {timeout_s: 0.3}\n"))
    llm_server.script(Fault(delay_s=5.0))
    with pytest.raises(AgentLimitError) as info:
        agent.run("hi")
    assert info.value.limit == "timeout_s"


@pytest.mark.parametrize("stop", ["max_tokens", "refusal"])
def test_max_tokens_and_refusal_are_reported(tmp_path: Path, llm_server: LLMServer, stop: str) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server))
    llm_server.script(Reply(text="I will not." if stop == "refusal" else "The answer is", stop=stop))
    result = agent.run("hi")
    assert result.stop == stop and result.answer in ("I will not.", "The answer is")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_tool_mode(tmp_path: Path, llm_server: LLMServer, provider: str) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server, provider, llm_extra="tool_mode: text\n"))
    llm_server.script(
        Reply(text='Thought: I need the calculator.\nAction: calculator\nAction Input: {"expression": "25 * 47"}'),
        Reply(text="Thought: done.\nFinal Answer: 1175"),
    )
    result = agent.run("What is 25 * 47?")
    assert result.answer == "1175" and [r.content for r in result.tool_results] == ["1175"]
    first = llm_server.requests[0].json
    assert "tools" not in first
    system = first["system"] if provider == "anthropic" else first["messages"][0]["content"]
    system_text = system if isinstance(system, str) else json.dumps(system)
    assert "Action Input" in system_text and "calculator" in system_text
    assert "Observation" in json.dumps(llm_server.requests[1].json["messages"])


def test_agents_are_steps_of_workflows(tmp_path: Path, llm_server: LLMServer) -> None:
    calc = namu.agent(agent_file(tmp_path, llm_server))

    @namu.task
    def shout(text: str) -> str:
        return text.upper()

    @namu.workflow
    def triage(questions: list[str], loud: bool = False) -> list[str]:
        answers = [calc(q) for q in questions]
        if loud:
            return [shout(a) for a in answers]
        return answers

    @namu.workflow
    def chain(q: str) -> str:
        first = calc(q)
        return calc(f"What is {len(first)} + 1?")

    questions = [f"What is {i} * 2?" for i in range(8)]
    art = namu.compile(triage)
    assert art.with_options(max_concurrency=4)(questions) == [f"The answer is {i * 2}." for i in range(8)]
    assert art(questions[:2], loud=True) == ["THE ANSWER IS 0.", "THE ANSWER IS 2."]
    assert namu.compile(chain)("What is 2 * 5?") == "The answer is 18."  # len("The answer is 10.") == 17


def test_every_run_is_recorded_without_the_api_key(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server))
    result = agent.run("What is 25 * 47?")
    llm_server.script(Fault(status=401, message=f"bad key {KEY}"))
    with pytest.raises(TaskError):
        agent.run(f"What is 1 + 1? My key is {KEY}")  # the agent's api_key_env is scrubbed, whatever its name
    history = tmp_path / "runs.sqlite"
    assert KEY.encode() not in history.read_bytes()
    rows = sqlite3.connect(history).execute("SELECT id, agent, status, iterations, answer FROM runs ORDER BY started_at").fetchall()
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("calc", "ok", 2, "The answer is 1175."), ("calc", "error", 0, "")]
    assert rows[0][0] == result.run_id


def test_a_session_continues_the_conversation(tmp_path: Path, llm_server: LLMServer) -> None:
    agent = namu.agent(agent_file(tmp_path, llm_server))
    agent.run("What is 2 + 2?", session="s1")
    llm_server.script(Reply(text="You asked about 2 + 2."))
    result = agent.run("What did I ask?", session="s1")
    assert [m.content for m in result.messages if m.role == "user"] == ["What is 2 + 2?", "What did I ask?"]
    sent = llm_server.requests[-1].json["messages"]
    assert len(sent) == 5  # user, assistant (tool call), tool, assistant, user


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_the_exact_response_cache(tmp_path: Path, llm_server: LLMServer, backend: str) -> None:
    from namu.runtime.llm import response_cache

    path = agent_file(tmp_path, llm_server, extra=f"cache: {{exact: true, backend: {backend}, directory: cache}}\n")
    first = namu.agent(path).run("What is 25 * 47?")
    assert len(llm_server.requests) == 2
    response_cache._caches.clear()  # as a new process would: only the SQLite cache remains
    again = namu.agent(path).run("What is 25 * 47?")
    assert again.answer == first.answer == "The answer is 1175."
    if backend == "sqlite":
        assert len(llm_server.requests) == 2 and again.usage.total_tokens == 0  # both answers from the cache, free
        assert (tmp_path / "cache").is_dir()
    else:
        assert len(llm_server.requests) == 4  # memory died with the "process"
        assert namu.agent(path).run("What is 25 * 47?").usage.total_tokens == 0 and len(llm_server.requests) == 4
    namu.agent(path).run("What is 2 * 3?")
    assert len(llm_server.requests) in (4, 6)  # another question is asked


def test_the_semantic_response_cache(tmp_path: Path, llm_server: LLMServer) -> None:
    (tmp_path / "embeddings.py").write_text(textwrap.dedent("""\
        import re

        WORDS = {}

        def embed(text: str) -> list[float]:
            vector = [0.0] * 64
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vector[WORDS.setdefault(word, len(WORDS) % 64)] += 1.0
            return vector
        """))
    path = agent_file(tmp_path, llm_server, extra="cache: {semantic: {threshold: 0.99, python: embeddings.py:embed}}\n")
    agent = namu.agent(path)
    assert agent.run("What is 25 * 47?").answer == "The answer is 1175."
    assert len(llm_server.requests) == 2
    assert agent.run("what is 25*47").answer == "The answer is 1175."  # the same words: reused
    assert len(llm_server.requests) == 3  # only the turn after the tool call differed (it has no user message last)
    assert agent.run("What is 3 * 3?").answer == "The answer is 9."
    assert len(llm_server.requests) == 5


def test_semantic_cache_embeddings_from_the_provider(tmp_path: Path, llm_server: LLMServer) -> None:
    path = agent_file(tmp_path, llm_server, "openai", extra="cache: {semantic: {threshold: 0.999, embeddings_model: text-embedding-3-small}}\n")
    agent = namu.agent(path)
    agent.run("What is 4 * 4?")
    agent.run("What is 4 * 4?")
    assert [r.path for r in llm_server.requests].count("/v1/embeddings") == 2
    assert [r.path for r in llm_server.requests].count("/v1/chat/completions") == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_agent_calls_the_tools_of_an_mcp_server(tmp_path: Path, llm_server: LLMServer, provider: str) -> None:
    import sys

    server_py = Path(__file__).with_name("mcp_server.py")
    tools = f"  - mcp: {{command: [{sys.executable}, {server_py}], prefix: m_, include: [add, fail]}}\n"
    agent = namu.agent(agent_file(tmp_path, llm_server, provider, tools=tools))
    llm_server.script(
        Reply(tool_calls=[("m_add", {"a": 2, "b": 40}), ("m_fail", {"message": "no such account"})]),
        Reply(text="2 + 40 = 42."),
    )
    result = agent.run("Add 2 and 40.")
    assert result.answer == "2 + 40 = 42."
    assert [(r.content, r.is_error) for r in result.tool_results] == [
        ("42", False), ("error: Error executing tool fail: no such account", True)]
    first = llm_server.requests[0].json
    names = {t["name"] if provider == "anthropic" else t["function"]["name"] for t in first["tools"]}
    assert names == {"m_add", "m_fail"}


def test_an_agent_uses_the_http_tool_only_on_allowed_hosts(tmp_path: Path, llm_server: LLMServer) -> None:
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            hits.append(self.path)
            body = b'{"status": "shipped"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        tools = f"  - http: {{allowed_hosts: ['127.0.0.1:{port}']}}\n"
        agent = namu.agent(agent_file(tmp_path, llm_server, tools=tools))
        llm_server.script(
            Reply(tool_calls=[("http_request", {"method": "GET", "url": f"http://127.0.0.1:{port}/orders/7"}),
                              ("http_request", {"method": "GET", "url": f"http://localhost:{port}/orders/8"})]),
            Reply(text="Order 7 has shipped."),
        )
        result = agent.run("Where is order 7?")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.answer == "Order 7 has shipped."
    assert "shipped" in result.tool_results[0].content and not result.tool_results[0].is_error
    assert result.tool_results[1].is_error and "localhost" in result.tool_results[1].content
    assert hits == ["/orders/7"]  # the refused host got no request


def test_a_tool_past_its_timeout_is_an_error_result(tmp_path: Path, llm_server: LLMServer) -> None:
    (tmp_path / "slow.py").write_text(textwrap.dedent("""\
        import asyncio

        async def wait(seconds: float) -> str:
            \"\"\"Wait.\"\"\"
            await asyncio.sleep(seconds)
            return "waited"
        """))
    agent = namu.agent(agent_file(tmp_path, llm_server, tools="  - python: {target: 'slow.py:wait', timeout_s: 0.1}\n"))
    llm_server.script(Reply(tool_calls=[("wait", {"seconds": 30})]), Reply(tool_calls=[("wait", {"seconds": 0})]), Reply(text="ok"))
    result = agent.run("wait")
    assert [(r.is_error, r.content) for r in result.tool_results] == [
        (True, "error: the tool timed out after 0.1 s"), (False, "waited")]
