"""Record agent runs in the run history, and continue a session's conversation.

::

    with recording(session="support-42") as runs:
        result = agent_artifact(input="Where is my order?")
    # every agent run started inside (a workflow may run several) is now in the history

The runs are recorded when the block ends, however it ends: ``ok``, ``limit`` (a hard
stop ended it), ``error`` or ``cancelled`` (Ctrl+C), each with the transcript, tool
calls and usage it had. ``NAMU_RUN_HISTORY=off`` (or ``history=False``) records nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from namu.runtime.llm.react import PRIOR_MESSAGES, RUNS, AgentState

__all__ = ["history_enabled", "recording"]



def history_enabled(history: str | os.PathLike[str] | bool | None) -> bool:
    """Whether runs are recorded: ``history`` False, or ``NAMU_RUN_HISTORY=off``, says no."""
    from namu.runtime.llm.history import history_off

    if history is False:
        return False
    if history is None or history is True:
        return not history_off()
    return True


@contextlib.contextmanager
def recording(
    *,
    history: str | os.PathLike[str] | bool | None = None,
    session: str | None = None,
    artifact: str = "",
) -> Iterator[list[AgentState]]:
    """Collect the agent runs started in the block and record them when it ends.

    Args:
        history: the history file, None or True (the default file), or False (record nothing).
        session: a conversation name: its earlier messages open each run, and the runs
            are recorded under it.
        artifact: the agent's file or artifact, recorded with each run.

    Yields:
        The states of the runs started so far (the list grows as runs start).

    Raises:
        RunHistoryError: the history cannot be opened (before the block runs).
    """
    store = _store(None if history in (None, True) else Path(history)) if history_enabled(history) else None  # type: ignore[arg-type]
    runs: list[AgentState] = []
    token = RUNS.set(runs)
    prior = PRIOR_MESSAGES.set(tuple(store.session_messages(session)) if store is not None and session else None)
    status, error = "ok", ""
    try:
        yield runs
    except KeyboardInterrupt:
        status, error = "cancelled", "interrupted"
        raise
    except BaseException as exc:
        status, error = "error", _one_line(exc)
        raise
    finally:
        RUNS.reset(token)
        PRIOR_MESSAGES.reset(prior)
        if store is not None:
            for state in runs:
                store.record(_record(state, status, error, session, artifact), secret_env=state.config.api_key_envs)


#: the histories opened by this process, by path: kept open (a run's record is then one
#: INSERT; opening and closing a SQLite file per run cost ten times the run itself)
_stores: dict[Any, Any] = {}
_stores_lock = threading.Lock()


def _store(path: Path | None) -> Any:
    from namu.runtime.llm.history import RunHistory, default_history_path

    given = (path, os.environ.get("NAMU_RUN_HISTORY"))
    store = _stores.get(given)
    if store is None:
        key = (path or default_history_path()).expanduser().resolve()
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = RunHistory(key)
            _stores[given] = store
    return store


def _record(state: AgentState, status: str, error: str, session: str | None, artifact: str) -> Any:
    from namu.runtime.llm.history import RunRecord

    if state.stop in ("answer", "max_tokens", "refusal"):
        status, error = "ok", ""
    elif state.stop and status != "cancelled":
        status = "limit"
        error = error or f"stopped by limits.{state.stop}"
    result = state.result()
    return RunRecord(
        id=state.run_id,
        agent=state.config.name,
        status=status,  # type: ignore[arg-type]
        artifact=artifact,
        session=session,
        model=state.config.model,
        duration_s=result.duration_s,
        stop=state.stop,
        inputs=state.inputs,
        answer=result.answer,
        messages=result.messages,
        tool_calls=result.tool_calls,
        usage=result.usage,
        cost_usd=result.cost_usd,
        iterations=result.iterations,
        error=error,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
