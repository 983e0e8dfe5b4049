"""Module-level tasks, workflows and helpers shared by the frontend tests.

Workflows used by hypothesis tests live here (at module level) so that each one is
compiled once and its cached artifact is reused across examples.

``run_both`` delegates to ``tests.conftest.run_both`` (kernel + reference, compared) as
soon as the native kernel is importable; until then it runs the reference executor only,
with the same ONNX ``full_check``.
"""

import contextlib
import importlib.util
import itertools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import onnx
import pytest

import namu
from tests import conftest


def _kernel_available() -> bool:
    try:
        return importlib.util.find_spec("namu._kernel") is not None
    except (ImportError, ValueError):
        return False


HAVE_KERNEL = _kernel_available()

#: pytest params for per-executor tests: the kernel param is skipped until it is built.
EXECUTOR_PARAMS = [
    pytest.param(
        "kernel",
        marks=pytest.mark.skipif(not HAVE_KERNEL, reason="namu._kernel is not built yet"),
    ),
    "reference",
]
#: the executors a test can run on right now.
AVAILABLE_EXECUTORS = ("kernel", "reference") if HAVE_KERNEL else ("reference",)


def run_both(wf: namu.Workflow | namu.Artifact, *args: Any, **kwargs: Any) -> namu.RunResult:
    """``conftest.run_both`` once the kernel exists; the reference executor alone until then."""
    if HAVE_KERNEL:
        return conftest.run_both(wf, *args, **kwargs)
    art = wf.compile() if isinstance(wf, namu.Workflow) else wf
    onnx.checker.check_model(art.to_proto(), full_check=True)
    return art.run(*args, executor="reference", **kwargs)


@contextlib.contextmanager
def _plain_workflows() -> Iterator[None]:
    """Make sub-workflow calls run their body as plain Python (the reference meaning)."""
    original = namu.Workflow.__call__
    namu.Workflow.__call__ = lambda self, *a, **k: self.fn(*a, **k)  # type: ignore[method-assign]
    try:
        yield
    finally:
        namu.Workflow.__call__ = original  # type: ignore[method-assign]


def plain(wf: namu.Workflow, *args: Any, **kwargs: Any) -> Any:
    """What ``wf`` means as plain Python: its body, with tasks and sub-workflows called directly."""
    with _plain_workflows():
        return wf.fn(*args, **kwargs)


def outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """``("value", v)`` or ``("raises", ExceptionType)``: for comparing two evaluations. A
    task's failure counts as the task's own exception (a run reports it as
    ``TaskError`` with that exception as ``__cause__``)."""
    try:
        return ("value", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the type is what we compare
        while isinstance(exc, namu.TaskError) and isinstance(exc.__cause__, Exception):
            exc = exc.__cause__
        return ("raises", type(exc))


def same(a: Any, b: Any) -> bool:
    """Equal values of identical types, recursively through tuples, lists and dicts."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# ---------------------------------------------------------------------------- tasks
@namu.task
def add(a: int, b: int) -> int:
    return a + b


@namu.task
def plus(a: int, b: int) -> int:
    return a + b


@namu.task
def numbers(n: int) -> list[int]:
    return list(range(1, n))


@namu.task
def split(x: int) -> list[int]:
    return [10 * x, 10 * x + 1, 10 * x + 2]


# ---------------------------------------------------------------- arithmetic workflows
@namu.workflow
def int_arith(a: int, b: int):
    return a + b, a - b, a * b, -a, +a, not a, -(a - b)


@namu.workflow
def int_div(a: int, b: int):
    return a / b, a // b, a % b


@namu.workflow
def int_pow(a: int, b: int) -> int:
    return a**b


@namu.workflow
def float_arith(x: float, y: float):
    return x + y, x - y, x * y, -x, not x, x / y


@namu.workflow
def float_pow(x: float, y: float) -> float:
    return x**y


@namu.workflow
def mixed_arith(a: int, x: float):
    return a + x, x + a, a - x, x * a, a / x, x / a, a**2 + x, a * 2.5


@namu.workflow
def bool_arith(p: bool, q: bool):
    return p + q, p - q, p * q, -p, not p, p + 1, q * 2.5


@namu.workflow
def int_compare(a: int, b: int):
    return a < b, a <= b, a > b, a >= b, a == b, a != b


@namu.workflow
def float_compare(x: float, y: float):
    return x < y, x <= y, x > y, x >= y, x == y, x != y


@namu.workflow
def mixed_compare(a: int, x: float):
    return a < x, a <= x, a > x, a >= x, a == x, a != x, x == a


@namu.workflow
def chained_compare(a: int, b: int, c: int):
    return a < b < c, a <= b == c, a != b != c, a < b > c, 0 <= a < b <= c < 100


@namu.workflow
def bool_ops(p: bool, q: bool, r: bool):
    return p and q, p or q, p and q or r, not (p or q) and r, p and not q, (p or q) and (q or r)


@namu.workflow
def compare_bool_ops(a: int, b: int):
    return a < b and b < 10, a == b or a > 5, not a < b or b == 0


@namu.workflow
def precedence(a: int, b: int, c: int):
    return a + b * c, (a + b) * c, a - b - c, a - (b - c), -a**2, (-a) ** 2, a * b % 7 + c


def differential(wf: namu.Workflow, *args: Any, **kwargs: Any) -> Any:
    """Assert that ``wf`` compiled means what ``wf`` means as plain Python.

    Same value and same types (recursively) on every available executor, or, when plain
    Python raises, the same exception type on every available executor. Returns the
    plain Python outcome.
    """
    kind, expected = outcome(plain, wf, *args, **kwargs)
    if kind == "value":
        got = run_both(wf, *args, **kwargs).value
        assert same(got, expected), f"compiled {got!r} != plain {expected!r}"
    else:
        art = wf.compile()
        for executor in AVAILABLE_EXECUTORS:
            with pytest.raises(expected):
                art.run(*args, executor=executor, **kwargs)
    return kind, expected


# ------------------------------------------------------------ compiled against plain
#: the optimization levels the differential tests compile at
OPT_LEVELS = (0, 2)


def import_source(path: Path, source: str) -> Any:
    """Write ``source`` to ``path`` and import it as a module named after the file (a
    workflow must live in a file namu can read back)."""
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def compiled_samples(directory: Path, stem: str, source: str, names: Sequence[str]) -> Any:
    """The module of ``source`` (written to ``directory/stem.py``), with ``artifacts``: each
    workflow of ``names`` compiled at every level of :data:`OPT_LEVELS`."""
    module = import_source(directory / f"{stem}.py", source)
    module.artifacts = {name: [namu.compile(getattr(module, name), opt_level=level) for level in OPT_LEVELS] for name in names}
    return module


def identical(a: Any, b: Any) -> bool:
    """Identical types and equal values, recursively through tuples, lists, dicts and
    sets; floats and complexes equal to the bit (NaN, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (float, complex)):
        return repr(a) == repr(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(identical, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return len(a) == len(b) and all(any(identical(x, y) for y in b) for x in a)
    return a == b


def assert_python_meaning(artifacts: list[namu.Artifact], wf: namu.Workflow, *args: Any) -> tuple[str, Any]:
    """Every compiled run (each artifact of :data:`OPT_LEVELS`, each executor) gives what
    ``wf`` gives as plain Python: value and type, or exception type. Returns the plain
    outcome."""
    kind, expected = outcome(plain, wf, *args)
    for (level, art), executor in itertools.product(zip(OPT_LEVELS, artifacts), AVAILABLE_EXECUTORS):
        got_kind, got = outcome(lambda: art.run(*args, executor=executor).value)
        where = f"-O{level} {executor}, {args}"
        assert got_kind == kind, f"{where}: {got_kind} {got!r}, Python: {kind} {expected!r}"
        if kind == "value":
            assert identical(got, expected), f"{where}: {got!r} ({type(got).__name__}), Python: {expected!r} ({type(expected).__name__})"
        else:
            assert got is expected, f"{where}: raises {got.__name__}, Python raises {expected.__name__}"
    return kind, expected
