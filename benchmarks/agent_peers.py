"""The agents compared by ``benchmarks/test_agents.py``: one calculator agent written four
ways, all making the same Anthropic Messages API calls to the same loopback server.

* the floor: a hand-written ReAct loop over the official SDK's ``AsyncAnthropic`` client;
* namu: an agent YAML file (``provider: anthropic``, so the same SDK client);
* LangGraph: ``langgraph.prebuilt.create_react_agent`` over ``langchain_anthropic.ChatAnthropic``;
* PydanticAI: ``pydantic_ai.Agent`` over ``AnthropicModel`` + ``AnthropicProvider``.

Each runs namu's own calculator (:func:`calculator`, the ``calculator`` tool's evaluator)
with the same name, description and input schema, under the same system prompt, model
name, ``max_tokens`` and temperature, with each one's default retry settings (no call
fails here). The server (:class:`ServerProcess`) is ``tests/agents/llm_server.py``'s
``LLMServer`` answering with its default calculator model (first turn: a ``calculator`` call; second: the
answer), so one run is two ReAct iterations: two LLM calls, one tool call.

The server runs in a child process, so its work takes nothing from the interpreter
being measured; :class:`RawClient` sends the floor's two requests over a bare socket to
measure what the server and loopback cost a request by themselves.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.peers import need
from namu.errors import ToolError
from namu.runtime.tools.calculator import CalculatorTool, evaluate, format_number

ROOT = Path(__file__).resolve().parents[1]
MODEL = "claude-sonnet-4-5"
MAX_TOKENS = 1024
SYSTEM = "You are a careful assistant. Use the calculator for any arithmetic."
#: the API key the agents send (the server takes any), and the environment variable
#: namu's agent file names for it (the benchmark sets it)
KEY_ENV, KEY = "NAMU_BENCH_LLM_KEY", "sk-bench-loopback"
#: namu's calculator tool as the model sees it: name, description, input schema
TOOL = CalculatorTool(60.0).spec()
#: ReAct iterations of one run (LLM calls: a tool call, then the answer)
ITERATIONS = 2


def question(i: int) -> str:
    """The ``i``-th question; :func:`answer` is what the server's model answers to it."""
    return f"What is {i} * 7?"


def answer(i: int) -> str:
    return f"The answer is {i * 7}."


async def calculator(expression: str) -> str:
    """The calculator every agent runs: namu's evaluator, answering as namu's tool does
    (``async``, as namu's tool is: the peers would run a plain function in a worker thread)."""
    return format_number(evaluate(expression))


# ---------------------------------------------------------------------- the server
_SERVE = """
import sys
from tests.agents.llm_server import LLMServer

with LLMServer() as server:
    print(server.url, flush=True)
    sys.stdin.read()  # serve until the benchmark closes stdin
"""


class ServerProcess:
    """``LLMServer`` (its default calculator model, answering at once) in a child process.

    Attributes:
        url: ``http://127.0.0.1:PORT``, the Anthropic base URL.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"the LLM server did not start (it printed {self.url!r})")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def close(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        self._proc.wait(timeout=30)


def floor_requests(i: int) -> list[dict[str, Any]]:
    """The two request bodies the floor sends for question ``i`` (the tool-use id is the
    server's, which the server does not check against its own)."""
    first: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": MAX_TOKENS,
        "system": SYSTEM,
        "temperature": 0,
        "tools": [{"name": TOOL.name, "description": TOOL.description, "input_schema": TOOL.input_schema}],
        "messages": [{"role": "user", "content": question(i)}],
    }
    call = {"type": "tool_use", "id": "toolu_00000100", "name": "calculator", "input": {"expression": f"{i} * 7"}}
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": str(i * 7)}
    second = {**first, "messages": [*first["messages"], {"role": "assistant", "content": [call]},
                                    {"role": "user", "content": [result]}]}
    return [first, second]


class RawClient:
    """HTTP/1.1 over one keep-alive socket, nothing else: what a request costs the
    server and the loopback, with next to no client."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    @staticmethod
    def encode(body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        head = (f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                f"anthropic-version: 2023-06-01\r\nx-api-key: {KEY}\r\ncontent-length: {len(data)}\r\n\r\n")
        return head.encode() + data

    def roundtrip(self, request: bytes) -> bytes:
        """Send one encoded request; the body of the answer (200 asserted)."""
        self._sock.sendall(request)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._sock.recv(65536)
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += self._sock.recv(65536)
        self._buffer = rest[length:]
        return rest[:length]

    def close(self) -> None:
        self._sock.close()


# ---------------------------------------------------------------------- the floor
class Floor:
    """A hand-written ReAct loop: the SDK client, the messages list, the calculator."""

    def __init__(self, base_url: str) -> None:
        import anthropic

        self.client = anthropic.AsyncAnthropic(base_url=base_url, api_key=KEY)
        self.tools = [{"name": TOOL.name, "description": TOOL.description, "input_schema": TOOL.input_schema}]

    async def run(self, text: str, max_iterations: int = 8) -> str:
        """One run; the answer."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
        for _ in range(max_iterations):
            reply = await self.client.messages.create(
                model=MODEL, max_tokens=MAX_TOKENS, system=SYSTEM, tools=self.tools, messages=messages,
                extra_body={"temperature": 0},  # as namu sends it (this SDK's create() takes no temperature)
            )
            messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in reply.content]})
            calls = [block for block in reply.content if block.type == "tool_use"]
            if not calls:
                return "".join(block.text for block in reply.content if block.type == "text")
            results = []
            for call in calls:
                try:
                    results.append({"type": "tool_result", "tool_use_id": call.id, "content": await calculator(**call.input)})
                except ToolError as exc:
                    results.append({"type": "tool_result", "tool_use_id": call.id, "content": str(exc), "is_error": True})
            messages.append({"role": "user", "content": results})
        raise RuntimeError("max_iterations reached")

    async def aclose(self) -> None:
        await self.client.close()


# ---------------------------------------------------------------------- namu
AGENT_YAML = """\
name: calculator
description: Answers arithmetic questions.
llm:
  provider: anthropic
  model: {model}
  temperature: 0
  max_tokens: {max_tokens}
  base_url: {base_url}
  api_key_env: {key_env}
system_prompt: {system}
tools:
  - calculator
limits:
  max_iterations: 8
"""

#: what a user writes to fan the agent out: a workflow over the questions (``calc`` is
#: the agent, read from the file next to this module)
FANOUT_WORKFLOW = '''
from pathlib import Path

import namu

calc = namu.agent(Path(__file__).with_name("calculator.yaml"))


@namu.workflow
def ask_all(questions: list[str]) -> list[str]:
    return [calc(q) for q in questions]
'''


def namu_agent_file(directory: Path, base_url: str) -> Path:
    """Write the namu agent file (``calculator.yaml``) into ``directory``; its path."""
    path = directory / "calculator.yaml"
    path.write_text(AGENT_YAML.format(model=MODEL, max_tokens=MAX_TOKENS, base_url=base_url, key_env=KEY_ENV, system=SYSTEM))
    return path


def namu_fanout_module(directory: Path, base_url: str) -> ModuleType:
    """The module of :data:`FANOUT_WORKFLOW`, next to its agent file, imported."""
    from namu.runtime.user_code import import_path

    namu_agent_file(directory, base_url)
    path = directory / "namu_bench_agents.py"
    path.write_text(textwrap.dedent(FANOUT_WORKFLOW))
    return import_path(path)


# ---------------------------------------------------------------------- LangGraph
def chat_anthropic(base_url: str) -> Any:
    """LangChain's ``ChatAnthropic`` for the server."""
    need("langgraph")
    need("langchain_anthropic")
    from langchain_anthropic import ChatAnthropic

    return ChatAnthropic(model=MODEL, base_url=base_url, api_key=KEY, max_tokens=MAX_TOKENS, temperature=0)


def langgraph_agent(model: Any) -> Any:
    """LangGraph's prebuilt ReAct agent over the chat model ``model``."""
    from langchain_core.tools import StructuredTool
    from langgraph.prebuilt import create_react_agent

    tool = StructuredTool.from_function(coroutine=calculator, name=TOOL.name, description=TOOL.description)
    with warnings.catch_warnings():  # LangGraph 1.x: "moved to langchain.agents.create_agent"
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(model, [tool], prompt=SYSTEM)


class LangGraph:
    """LangGraph's agent, run with ``ainvoke``."""

    def __init__(self, base_url: str) -> None:
        self.model = chat_anthropic(base_url)
        self.agent = langgraph_agent(self.model)

    async def run(self, text: str) -> str:
        state = await self.agent.ainvoke({"messages": [("user", text)]})
        return state["messages"][-1].text

    async def aclose(self) -> None:
        # langchain_anthropic keeps one HTTP client per base URL for the process
        await self.model._async_client.close()


# ---------------------------------------------------------------------- PydanticAI
def pydantic_ai_provider(base_url: str) -> Any:
    """PydanticAI's ``AnthropicProvider`` for the server (it holds an SDK client, which
    takes 20-30 ms to make: agents share one)."""
    need("pydantic_ai")
    from pydantic_ai.providers.anthropic import AnthropicProvider

    return AnthropicProvider(base_url=base_url, api_key=KEY)


def pydantic_ai_agent(provider: Any) -> Any:
    """PydanticAI's ``Agent`` over a new ``AnthropicModel`` of ``provider``."""
    from pydantic_ai import Agent, Tool
    from pydantic_ai.models.anthropic import AnthropicModel

    model = AnthropicModel(MODEL, provider=provider)
    tool = Tool(calculator, name=TOOL.name, description=TOOL.description)
    return Agent(model, tools=[tool], system_prompt=SYSTEM, model_settings={"max_tokens": MAX_TOKENS, "temperature": 0})


class PydanticAI:
    """PydanticAI's agent, run with ``await agent.run(...)``."""

    def __init__(self, base_url: str) -> None:
        self.provider = pydantic_ai_provider(base_url)
        self.agent = pydantic_ai_agent(self.provider)

    async def run(self, text: str) -> str:
        result = await self.agent.run(text)
        return result.output

    async def aclose(self) -> None:
        await self.provider.client.close()


# ---------------------------------------------------------------------- concurrency
async def gather_capped(run: Callable[[str], Awaitable[str]], questions: Sequence[str], cap: int) -> list[str]:
    """Every question through ``run``, at most ``cap`` at once (``asyncio.gather`` under a
    semaphore)."""
    semaphore = asyncio.Semaphore(cap)

    async def one(text: str) -> str:
        async with semaphore:
            return await run(text)

    return await asyncio.gather(*(one(q) for q in questions))
