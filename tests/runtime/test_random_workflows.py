"""Hypothesis-generated workflows: plain Python, the kernel and the reference agree.

Each example is a random DAG of statements (task calls, scalar ops, conditional
expressions, operators, builtins and methods on strings and lists, if/else, while
loops, loops with break/continue/else, try/except/else/finally around failing tasks,
fan-outs, tasks that fail on some inputs, tasks that
fail transiently and succeed on retry, tasks that fail more often than they are retried,
``async def`` tasks), written as real source into a module, compiled, and run:

* as plain Python, with the semantics a run gives tasks applied by hand (retries, async
  tasks run to completion): the oracle;
* on the reference executor;
* on the kernel in every mode: ``task_mode="inline"`` and ``"thread"``, each with
  ``max_concurrency=1`` and ``256``.

A run that succeeds must give plain Python's value and make the same attempts of every
flaky call. A run that fails must fail with a task's exception (same type and message):
the reference with plain Python's; a concurrent kernel run (thread mode or async tasks)
with the error of any failing call that may run first (:func:`_possible_errors`).

Two kernel bugs this test found are pinned by regression tests at the end of the file:
a failed run must close the awaitables it made but never handed to the async driver,
and the inline kernel must run the bodies of ``If``/``Loop``/fan-outs before the later
nodes of the enclosing graph (side effects in program order).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, NamedTuple

import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import namu
from namu.runtime.tasks import retries as task_retries
from namu.runtime.user_code import import_path

PRELUDE = '''
import asyncio
import threading

import namu

#: attempts of the flaky tasks in the current run, per (task, argument); the test
#: clears it before each run. A shared count per argument keeps the outcome the same
#: however calls interleave: a task that fails the first k attempts for an argument
#: fails k times in all, so with k <= retries every call succeeds.
ATTEMPTS: dict[tuple[str, int], int] = {}
_LOCK = threading.Lock()


def _attempt(task: str, a: int) -> int:
    with _LOCK:
        n = ATTEMPTS[(task, a)] = ATTEMPTS.get((task, a), 0) + 1
    return n


@namu.task
def add2(a: int, b: int) -> int:
    return a + b

@namu.task
def mix(a: int, b: int) -> int:
    return (a * 31 + b) % 1009

@namu.task
def span(n: int) -> list[int]:
    return list(range(n))

@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)

@namu.task
def boom(a: int) -> int:
    if a % 7 == 3:
        raise ValueError(f"boom on {a}")
    return a + 1

@namu.task(retries=2)
def flaky(a: int) -> int:
    # fails the first a % 3 (0, 1 or 2) attempts for a given argument
    if _attempt("flaky", a) <= a % 3:
        raise ConnectionError(f"flaky on {a}")
    return (a * 17 + 5) % 1009

@namu.task(retries=1)
def fragile(a: int) -> int:
    # fails every attempt when a % 5 == 2 (more often than it is retried), else fails
    # the first attempt for even arguments
    n = _attempt("fragile", a)
    if a % 5 == 2:
        raise RuntimeError(f"fragile gave up on {a}")
    if a % 2 == 0 and n == 1:
        raise ConnectionError(f"fragile hiccup on {a}")
    return a - 7

@namu.task
async def add2_async(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b

@namu.task(retries=2)
async def aflaky(a: int) -> int:
    # async, fails the first (a + 1) % 3 attempts for a given argument
    await asyncio.sleep(0)
    if _attempt("aflaky", a) <= (a + 1) % 3:
        raise ConnectionError(f"aflaky on {a}")
    return (a * 7 + 1) % 1009

@namu.task(retries=1)
async def aboom(a: int) -> int:
    # async, fails every attempt when a % 6 == 1
    _attempt("aboom", a)
    await asyncio.sleep(0)
    if a % 6 == 1:
        raise KeyError(f"aboom on {a}")
    return a * 2
'''

KINDS = [
    "task", "mix", "op", "ifexp", "if", "fanout", "while", "boom", "for",
    "flaky", "fragile", "async", "aflaky", "aboom", "flakyfan", "taskfan", "asyncfan", "flakywhile", "pyops", "jumps",
    "catch",
]  # fmt: skip
#: try statements around failing tasks (``{v}`` the variable assigned, ``{a}``, ``{b}``
#: ints): each fails in at most one way (``fragile`` past its retries raises a
#: RuntimeError no handler matches); a fan-out inside a try calls ``boom``, which records
#: no attempts, so a concurrent run that starts more items than Python compares equal
CATCHES = [
    "try:\n    {v} = boom({a})\nexcept ValueError as e:\n    {v} = len(str(e))",
    "try:\n    {v} = fragile({a})\nexcept ConnectionError:\n    {v} = -1",
    "try:\n    {v} = total([boom(x + {a}) for x in span({b} % 5)])\nexcept ValueError:\n    {v} = 0\n"
    "else:\n    {v} = {v} + 1\nfinally:\n    {v} = add2({v}, 1)",
    "{v} = {a}\nfor x in span({b} % 5):\n    try:\n        {v} = add2({v}, boom(x + {v} % 7))\n"
    "    except ArithmeticError:\n        break\n    except LookupError:\n        pass\n    except ValueError:\n"
    "        continue\n    {v} = {v} + 1",
    "try:\n    try:\n        {v} = mix(boom({a}), {b})\n    finally:\n        {v} = add2({a}, 2)\nexcept Exception:\n"
    "    {v} = {b}",
    "{v} = {a}\nfor x in span({b} % 5):\n    try:\n        if x == 1:\n            continue\n"
    "        {v} = add2({v}, boom(x + {v} % 7))\n    except ValueError:\n        break\n    finally:\n"
    "        {v} = {v} + 1",
]
#: statements of Python operators, builtins and methods on strings and lists (an int
#: result, so later statements can read it); ``{a}``, ``{b}``, ``{c}`` are ints
PYOPS = [
    "len(str({a}) + '-' * ({b} % 3) + str({b})[::-1]) + int(str({a} % 10))",
    "sum(sorted([{a}, {b}, {c}])[1:]) + len([{a}] * ({b} % 3) + [{c}])",
    "({a} % 3 and {b}) or {c}",
    "int(str({a}) < str({b})) + ({a} == str({b})) + (str({c}) in str({a}) + str({b}))",
    "len('{{}}|{{!r}}'.format({a}, str({b})).split('|')[1]) + max([{a}, {b}, {c}][::2])",
    "len(','.join([str(x) for x in range({b} % 4)]).strip(',')) + abs({a} - {c}) % 1009",
    "({a} & 255) ^ ({b} | 3) + (~{c} >> 2) % 17",
]
#: the kinds that may call an async task
ASYNC_KINDS = {"async", "aflaky", "aboom", "asyncfan", "flakywhile"}

#: the kernel runs every example in each of these modes
KERNEL_MODES = [
    {"task_mode": "inline", "max_concurrency": 1},
    {"task_mode": "inline", "max_concurrency": 256},
    {"task_mode": "thread", "max_concurrency": 1},
    {"task_mode": "thread", "max_concurrency": 256},
]



class Statement(NamedTuple):
    """One generated statement: it assigns ``var`` (and loop counters) and reads ``reads``."""

    var: str
    reads: tuple[str, ...]
    source: str


class Program(NamedTuple):
    source: str
    statements: tuple[Statement, ...]


@st.composite
def workflows(draw: st.DrawFn) -> Program:
    """A workflow `wf(p0: int, p1: int)`: its source and its statements.

    Each statement can fail in at most one way (one failing call for given inputs), so
    the errors a concurrent run may end with are known (:func:`_possible_errors`).
    """
    n_stmts = draw(st.integers(min_value=1, max_value=14))
    # about half the programs call no async task
    kinds = KINDS if draw(st.booleans()) else [k for k in KINDS if k not in ASYNC_KINDS]
    names = ["p0", "p1"]
    statements: list[Statement] = []
    for i in range(n_stmts):
        def pick() -> str:
            return draw(st.sampled_from(names))

        v = f"v{i}"
        kind = draw(st.sampled_from(kinds))
        a, b, c = pick(), pick(), pick()
        reads: tuple[str, ...] = (a,)
        if kind == "task":
            src, reads = f"{v} = add2({a}, {b})", (a, b)
        elif kind == "mix":
            src, reads = f"{v} = mix({a}, b={b})", (a, b)
        elif kind == "op":
            op = draw(st.sampled_from(["+", "-", "*", "%", "//"]))
            rhs = f"({b} % 97 + 1)" if op in ("%", "//") else b
            src, reads = f"{v} = ({a} {op} {rhs}) % 100003", (a, b)
        elif kind == "ifexp":
            src, reads = f"{v} = {a} if {b} > {c} else add2({c}, 1)", (a, b, c)
        elif kind == "if":
            src, reads = f"if {a} % 2 == 0:\n    {v} = add2({a}, 1)\nelse:\n    {v} = {b} * 2", (a, b)
        elif kind == "fanout":
            src, reads = f"{v} = total([mix(x, {a}) for x in span({b} % 5)])", (a, b)
        elif kind == "while":
            src = f"{v} = {a}\nk{i} = 0\nwhile k{i} < {b} % 4:\n    {v} = add2({v}, k{i})\n    k{i} = k{i} + 1"
            reads = (a, b)
        elif kind == "for":
            src, reads = f"{v} = {a}\nfor x in span({b} % 4):\n    {v} = mix({v}, x)", (a, b)
        elif kind == "flaky":
            src = f"{v} = flaky({a})"
        elif kind == "fragile":
            src = f"{v} = fragile({a})"
        elif kind == "async":
            src, reads = f"{v} = add2_async({a}, b={b})", (a, b)
        elif kind == "aflaky":
            src, reads = f"{v} = aflaky({a}) if {b} > {c} else add2_async({c}, 1)", (a, b, c)
        elif kind == "aboom":
            src = f"{v} = aboom({a})"
        elif kind == "flakyfan":
            # the same argument several times: the calls share their attempt count
            src, reads = f"{v} = total([flaky(x % 2 + {a}) for x in span({b} % 5)])", (a, b)
        elif kind in ("taskfan", "asyncfan"):
            # fragile(x + a) and boom(x + a) fail for at most one of 5 consecutive x
            sync_calls = ["fragile(x + {a})", "boom(x + {a})", "flaky(x + {a})"]
            async_calls = ["add2_async(x, {a})", "aflaky(x + {a})"]
            call = draw(st.sampled_from(sync_calls if kind == "taskfan" else async_calls))
            src, reads = f"{v} = total([{call.format(a=a)} for x in span({b} % 5)])", (a, b)
        elif kind == "jumps":
            # break, continue and for-else in a loop that carries a value
            src = (
                f"{v} = {a}\nfor x in span({b} % 6):\n    if mix({v}, x) % 5 == 0:\n        break\n"
                f"    if x % 2:\n        continue\n    {v} = add2({v}, x)\nelse:\n    {v} = {v} + 1"
            )
            reads = (a, b)
        elif kind == "catch":
            src = draw(st.sampled_from(CATCHES)).format(v=v, a=a, b=b)
            reads = (a, b)
        elif kind == "pyops":
            form = draw(st.sampled_from(PYOPS))
            src, reads = f"{v} = {form.format(a=a, b=b, c=c)}", (a, b, c)
        elif kind == "flakywhile":
            src = (
                f"{v} = {a}\nk{i} = 0\nwhile k{i} < {b} % 3:\n    {v} = aflaky({v} % 50) + flaky(k{i})\n"
                f"    k{i} = k{i} + 1"
            )
            reads = (a, b)
        else:
            src = f"{v} = boom({a})"
        statements.append(Statement(v, reads, src))
        names.append(v)
    outs = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    ret = outs[0] if len(outs) == 1 else ", ".join(outs)
    body = "\n".join(s.source for s in statements) + f"\nreturn {ret}"
    source = PRELUDE + "\n\n@namu.workflow\ndef wf(p0: int, p1: int):\n" + textwrap.indent(body, "    ") + "\n"
    return Program(source, tuple(statements))


def _as_plain(task: namu.Task) -> Callable[..., Any]:
    """``task`` as plain Python with the semantics a run gives it: ``retries`` more
    attempts after a failure (the last exception propagates), async tasks run to
    completion. (Called outside a workflow, a task is just its function.)"""
    fn, retries, is_async = task.fn, task.options.retries, task.is_async

    def call(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(retries + 1):
            try:
                return asyncio.run(fn(*args, **kwargs)) if is_async else fn(*args, **kwargs)
            except Exception:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")

    return call


def _plain_globals(module: ModuleType) -> dict[str, Any]:
    """The module's namespace with every task replaced by :func:`_as_plain`."""
    namespace = dict(vars(module))
    namespace.update({k: _as_plain(v) for k, v in namespace.items() if isinstance(v, namu.Task)})
    return namespace


def _plain(module: ModuleType, *args: Any) -> tuple[tuple[Any, ...], dict[tuple[str, int], int]]:
    """``(outcome, attempts)`` of the workflow's function run as plain Python."""
    fn = module.wf.fn
    plain_fn = FunctionType(fn.__code__, _plain_globals(module), fn.__name__, fn.__defaults__, fn.__closure__)
    module.ATTEMPTS.clear()
    try:
        outcome: tuple[Any, ...] = ("ok", plain_fn(*args))
    except Exception as exc:  # noqa: BLE001 - compared across runs
        outcome = ("error", type(exc).__name__, str(exc))
    return outcome, dict(module.ATTEMPTS)


def _possible_errors(module: ModuleType, program: Program, p0: int, p1: int) -> list[tuple[str, str, str]]:
    """Every error a run may end with, in program order (the first is plain Python's).

    A concurrent run (thread-mode or async calls) ends with the error of whichever
    failing call fails first in time. A statement can run, and fail, in some schedule
    when none of the statements it reads failed; statements that read a failed one
    never run.
    """
    namespace = _plain_globals(module)
    namespace.update(p0=p0, p1=p1)
    failed: set[str] = set()
    errors: list[tuple[str, str, str]] = []
    module.ATTEMPTS.clear()
    for statement in program.statements:
        if failed.intersection(statement.reads):
            failed.add(statement.var)
            continue
        try:
            exec(statement.source, namespace)  # noqa: S102 - our own generated source
        except Exception as exc:  # noqa: BLE001 - collected
            failed.add(statement.var)
            errors.append(("error", type(exc).__name__, str(exc)))
    return errors


def _compiled(module: ModuleType, art: namu.Artifact, *args: Any, **options: Any) -> tuple[tuple[Any, ...], str | None, dict]:
    """``(outcome, TaskError message or None, attempts)`` of one run of ``art``."""
    module.ATTEMPTS.clear()
    try:
        outcome: tuple[Any, ...] = ("ok", art.run(*args, **options).value)
        message = None
    except namu.TaskError as exc:
        cause = exc.__cause__
        assert cause is not None
        outcome = ("error", type(cause).__name__, str(cause))
        message = str(exc)
    return outcome, message, dict(module.ATTEMPTS)


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry at once: the backoff's delays are irrelevant to the results compared here
    (the flaky tasks fail the same number of times however their calls interleave)."""
    monkeypatch.setattr(task_retries, "retry_delay_s", lambda *args, **kwargs: 0.0)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(program=workflows(), p0=st.integers(-50, 50), p1=st.integers(-50, 50))
def test_random_workflow_agrees_with_plain_python(
    tmp_path_factory: pytest.TempPathFactory, no_retry_delay: None, program: Program, p0: int, p1: int
) -> None:
    source = program.source
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    directory = tmp_path_factory.getbasetemp() / "random_workflows"
    directory.mkdir(exist_ok=True)
    path = directory / f"rwf_{digest}.py"
    if not path.exists():
        path.write_text(source)
    module = import_path(path)
    art = namu.compile(module.wf)
    onnx.checker.check_model(art.to_proto(), full_check=True)

    # plain Python, the reference and the statement-by-statement oracle agree
    expected, expected_attempts = _plain(module, p0, p1)
    reference, message, attempts = _compiled(module, art, p0, p1, executor="reference")
    assert reference == expected
    assert attempts == expected_attempts
    # the optimizer preserves the meaning: the -O0 artifact does exactly the same
    unoptimized = namu.compile(module.wf, opt_level=0)
    assert _compiled(module, unoptimized, p0, p1, executor="reference") == (reference, message, attempts)
    possible = _possible_errors(module, program, p0, p1)
    assert possible[:1] == ([] if expected[0] == "ok" else [expected])
    if message is not None:
        task, cause = message.split(" failed at ", 1)[0], f": {reference[1]}: {reference[2]}"
        assert task.startswith("task '") and message.endswith(cause)

    has_async = any(binding.is_async for binding in art.bindings.values())
    event(f"{reference[0]}, {'with' if has_async else 'no'} async tasks, {len(possible)} possible errors")
    for mode in KERNEL_MODES:
        outcome, kernel_message, kernel_attempts = _compiled(module, art, p0, p1, executor="kernel", **mode)
        concurrent = has_async or mode["task_mode"] == "thread"
        if reference[0] == "ok" or not concurrent:
            # the same value, the same calls and attempts (and, in program order, the same error)
            assert (outcome, kernel_message, kernel_attempts) == (reference, message, attempts), mode
        else:
            # the error of a failing call that may run first
            assert outcome in possible, mode
            assert kernel_message is not None and kernel_message.endswith(f": {outcome[1]}: {outcome[2]}"), mode


UNSPAWNED_REGRESSION = """
import asyncio

import namu

@namu.task
async def nap(a: int) -> int:
    await asyncio.sleep(0)
    return a

@namu.task
def fail(a: int) -> int:
    raise ValueError(f"fail on {a}")

@namu.workflow
def wf(p0: int):
    v0 = nap(p0)
    v1 = fail(p0)
    return v0, v1
"""


def test_failed_run_closes_the_awaitables_it_never_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The minimal workflow the random test found: ``nap`` is made into a coroutine and
    queued for the driver, then ``fail`` (inline) fails the run before the queue is
    handed over. The run must end at once and close the coroutine it made."""
    path = tmp_path / "unspawned.py"
    path.write_text(UNSPAWNED_REGRESSION)
    art = namu.compile(import_path(path).wf)
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    try:
        art.run(1, executor="kernel", task_mode="inline", max_concurrency=256)
    except namu.TaskError as exc:
        error = str(exc.__cause__)
    else:
        error = None
    gc.collect()
    monkeypatch.undo()
    assert error == "fail on 1"
    assert [u for u in unraisable if "was never awaited" in str(u.exc_value)] == []


ORDER_REGRESSION = """
import namu

@namu.task
def span(n: int) -> list[int]:
    return list(range(n))

@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)

@namu.task
def first(a: int) -> int:
    raise ValueError(f"first on {a}")

@namu.task
def second(a: int) -> int:
    raise RuntimeError(f"second on {a}")

@namu.workflow
def branch(p0: int):
    if p0 > 0:
        v0 = first(p0)
    else:
        v0 = p0
    v1 = second(p0)
    return v0, v1

@namu.workflow
def loop(p0: int):
    v0 = p0
    k = 0
    while k < p0:
        v0 = first(v0)
        k = k + 1
    v1 = second(p0)
    return v0, v1

@namu.workflow
def fanout(p0: int):
    v0 = total([first(x) for x in span(p0)])
    v1 = second(p0)
    return v0, v1
"""


@pytest.mark.parametrize(("workflow", "expected"), [("branch", "first on 1"), ("loop", "first on 1"), ("fanout", "first on 0")])
def test_inline_kernel_runs_side_effects_in_program_order(tmp_path: Path, workflow: str, expected: str) -> None:
    """Minimal workflows the random test found: plain Python (and the reference) fail in
    ``first``, inside the body of the first statement; the inline kernel runs ``second``
    (the next statement, in the parent frame) before that body and fails there instead."""
    path = tmp_path / "order.py"
    path.write_text(ORDER_REGRESSION)
    art = namu.compile(getattr(import_path(path), workflow))

    def error_of(executor: str) -> str:
        try:
            art.run(1, executor=executor, task_mode="inline")
        except namu.TaskError as exc:
            return str(exc.__cause__)
        pytest.fail(f"the {executor} run did not fail")

    assert error_of("reference") == expected
    assert error_of("kernel") == expected
