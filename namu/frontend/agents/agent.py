"""``namu.agent``: an agent file as a Python object -- callable, compilable, and a step of
workflows.

::

    support = namu.agent("agents/support.yaml")
    support("Where is my order?")                 # the answer (str)
    result = support.run("Where is my order?")    # AgentResult: answer, messages, tool calls, usage
    for event in support.stream("Hi"):            # TextDelta, ToolCallEvent, ..., Final
        ...

    @namu.workflow
    def triage(questions: list[str]) -> list[str]:
        return [support(q) for q in questions]    # one agent run per question, concurrently

An agent compiles like a workflow (``namu.compile(support)``, ``namu compile
support.yaml``): the frontend lowers it (:mod:`namu.frontend.agents.lower`), the
passes bind its slots and gate its LLM calls, and the kernel runs the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from namu.errors import AgentLimitError, TaskError

if TYPE_CHECKING:
    from namu.frontend.agents.source import AgentSource
    from namu.frontend.registry import Lowered
    from namu.runtime.artifact import Artifact
    from namu.runtime.llm.messages import AgentEvent
    from namu.runtime.llm.react import AgentResult

__all__ = ["FRONTEND", "Agent", "AgentFrontend", "agent"]


class Agent:
    """An agent read from its file (see :func:`agent`).

    Attributes:
        source: the validated agent file.
        name: the agent's name.
    """

    def __init__(self, source: AgentSource) -> None:
        self.source = source
        self.name = source.spec.name
        self._artifact: Artifact | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<namu.agent {self.name} ({self.source.path or 'mapping'})>"

    @property
    def variables(self) -> list[str]:
        """The template variables the agent takes besides ``input``."""
        return [name for name, _ in self.source.variables]

    def compile(self) -> Artifact:
        """The agent compiled with the default options (once; kept)."""
        with self._lock:
            if self._artifact is None:
                from namu.compiler import compile as compile_

                self._artifact = compile_(self)
            return self._artifact

    def run(
        self,
        input: str = "",  # noqa: A002 - the agent's input is `input`
        *,
        session: str | None = None,
        history: str | os.PathLike[str] | bool | None = None,
        **variables: str,
    ) -> AgentResult:
        """Run the agent once, and record the run in the run history.

        Args:
            input: the user message (``{{ input }}`` in the prompt template).
            session: continue the conversation of this name (its earlier messages open
                the run) and record the run under it.
            history: the run history file; None: ``$NAMU_RUN_HISTORY``, else
                ``~/.namu/runs.sqlite``; False: do not record.
            variables: values of the template variables.

        Returns:
            The :class:`~namu.runtime.llm.react.AgentResult`.

        Raises:
            AgentLimitError: a limit ended the run (``.result`` holds the partial run).
            TaskError: the LLM call failed after its retries and fallbacks (the
                provider's :class:`~namu.errors.LLMError` is its ``__cause__``).
            InputError: a template variable is missing.
        """
        from namu.runtime.llm.recording import recording

        artifact = self.compile()
        try:
            with recording(history=history, session=session, artifact=self.source.path):
                return artifact(input, **variables)
        except TaskError as exc:
            raise unwrap_limit(exc) from exc.__cause__

    def __call__(self, input: str = "", **variables: str) -> str:  # noqa: A002
        """Run the agent once; its answer (see :meth:`run`)."""
        return self.run(input, **variables).answer

    async def arun(self, input: str = "", **variables: str) -> AgentResult:  # noqa: A002
        """:meth:`run` from async code (the run happens in a worker thread)."""
        return await asyncio.to_thread(self.run, input, **variables)

    def stream(self, input: str = "", **variables: str) -> Iterator[AgentEvent]:  # noqa: A002
        """Run the agent, yielding its events as they happen: ``TextDelta`` (the answer as
        it arrives), ``ToolCallEvent``, ``ToolResultEvent``, ``UsageEvent`` and last
        ``Final`` (holding the :class:`AgentResult`).

        Raises:
            As :meth:`run`, after the events before the failure.
        """
        import queue

        from namu.runtime.llm.react import EVENT_SINK

        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        done = object()
        failure: list[BaseException] = []

        def work() -> None:
            token = EVENT_SINK.set(events.put)
            try:
                self.run(input, **variables)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                failure.append(exc)
            finally:
                EVENT_SINK.reset(token)
                events.put(done)

        threading.Thread(target=work, name=f"namu-agent-{self.name}", daemon=True).start()
        while (event := events.get()) is not done:
            yield event
        if failure:
            raise failure[0]

    async def astream(self, input: str = "", **variables: str) -> AsyncIterator[AgentEvent]:  # noqa: A002
        """:meth:`stream` as an async iterator."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        def work() -> None:
            try:
                for event in self.stream(input, **variables):
                    loop.call_soon_threadsafe(events.put_nowait, event)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                loop.call_soon_threadsafe(events.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(events.put_nowait, done)

        worker = asyncio.create_task(asyncio.to_thread(work))
        while (event := await events.get()) is not done:
            if isinstance(event, BaseException):
                raise event
            yield event
        await worker


def unwrap_limit(exc: TaskError) -> BaseException:
    """The :class:`AgentLimitError` a task error carries (an LLM call that ran past the
    run's ``timeout_s``), else the task error itself."""
    cause = exc.__cause__
    return cause if isinstance(cause, AgentLimitError) else exc


def agent(path: str | os.PathLike[str], *, overrides: Sequence[str] = ()) -> Agent:
    """Read the agent file at ``path`` (see :class:`Agent` and ``docs/agents.md``).

    Args:
        path: a YAML agent file.
        overrides: ``"dotted.key=value"`` edits (``"llm.temperature=0.2"``).

    Raises:
        AgentSpecError: the file is missing or invalid (file, line and column of the fault).
    """
    from namu.frontend.agents.source import load_agent

    return Agent(load_agent(path, overrides))


class AgentFrontend:
    """The agent frontend: ``.yaml``/``.yml`` files and :class:`Agent` objects."""

    def load(self, path: Path, name: str | None) -> Agent:
        from namu.errors import SourceError
        from namu.frontend.agents.source import load_agent

        if name is not None:
            raise SourceError(f"{path}: an agent file holds one agent; name the file alone (not {path}:{name})")
        return Agent(load_agent(path))

    def lower(self, source: Agent) -> Lowered:
        from namu.frontend.agents.lower import lower_agent
        from namu.frontend.context import CompileContext

        ctx = CompileContext()
        graph, signature = lower_agent(source.source, ctx)
        return ctx.lowered(graph, signature, source.source.digest)


FRONTEND = AgentFrontend()
