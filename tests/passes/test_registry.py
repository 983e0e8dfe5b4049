"""The pass registry, the canonical pipeline and its levels, and the pipeline driver."""

from __future__ import annotations

import re

import onnx_ir as ir
import pytest

import namu
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import walk
from namu.passes import NamuPass, get, pipeline, register, registered, registry, run_passes
from tests.passes.conftest import parse

CANONICAL = [
    "verify-structure",
    "resolve-symbols",
    "inline-functions",
    "expand-defaults",
    "infer-types",
    "fold-constants",
    "eliminate-common-subexpressions",
    "eliminate-dead-code",
    "simplify-control-flow",
    "fuse-tasks",
    "infer-placement",
    "synthesize-wire-ops",
    "partition",
    "resolve-slots",
    "insert-resilience-gates",
    "plan-lifetimes",
    "assign-priorities",
    "verify-runtime-complete",
]
OPTIMIZATIONS = {
    "fold-constants": 1,
    "eliminate-common-subexpressions": 1,
    "eliminate-dead-code": 1,
    "simplify-control-flow": 2,
    "fuse-tasks": 2,
    "assign-priorities": 2,
}
#: the pipelines of -O1 and -O0, as they were when passes had an integer `order`
O1 = [n for n in CANONICAL if n not in ("simplify-control-flow", "fuse-tasks", "assign-priorities")]
O0 = [n for n in O1 if n not in ("fold-constants", "eliminate-common-subexpressions", "eliminate-dead-code")]
CLEANUP = ["fold-constants", "eliminate-common-subexpressions", "eliminate-dead-code", "simplify-control-flow"]


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by the test are undone after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_the_canonical_pipeline_has_the_eighteen_passes_in_order() -> None:
    assert pipeline() == CANONICAL
    assert pipeline(2) == namu.passes.default_pipeline()


def test_the_declared_constraints_give_the_pipelines_of_every_level() -> None:
    assert (pipeline(0), pipeline(1), pipeline(2)) == (O0, O1, CANONICAL)


def test_every_pass_runs_after_what_it_names() -> None:
    position = {name: i for i, name in enumerate(CANONICAL)}
    for info in registered():
        if not info.in_pipeline:
            continue
        assert all(position[first] < position[info.name] for first in info.after or ())
        assert all(position[info.name] < position[then] for then in info.before)


def test_the_cleanup_passes_form_one_group() -> None:
    assert [p.name for p in registered() if p.group == "cleanup"] == CLEANUP
    start = CANONICAL.index(CLEANUP[0])
    assert CANONICAL[start : start + len(CLEANUP)] == CLEANUP


def test_a_pass_without_constraints_runs_by_name_only() -> None:
    info = get("sort-topologically")
    assert not info.in_pipeline and not info.required
    assert "sort-topologically" not in pipeline()
    assert registered()[-1] is info  # after the pipeline's passes


def test_a_new_pass_runs_right_after_the_passes_it_names(own_registry: None) -> None:
    class AfterFusePass(NamuPass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            return self.result(model)

    class BeforeVerifyPass(AfterFusePass):
        pass

    class AfterFoldPass(AfterFusePass):
        pass

    register("zz-after-fuse", "test", after=("fuse-tasks",))(AfterFusePass)
    register("zz-before-verify", "test", before=("verify-runtime-complete",), level=1)(BeforeVerifyPass)
    register("zz-after-fold", "test", after=("fold-constants",))(AfterFoldPass)
    names = pipeline()
    # as early as the constraints allow: after the passes that were ready with it first
    # (ties by name), not at the end
    assert names.index("zz-after-fuse") == names.index("infer-placement") + 1
    assert names.index("zz-before-verify") < names.index("verify-runtime-complete")
    # a group runs as one block: a pass after one of its members runs after all of them
    assert names.index("zz-after-fold") == names.index("fuse-tasks") + 1
    assert names.index("zz-after-fold") > names.index("simplify-control-flow")
    assert "zz-before-verify" in pipeline(1) and "zz-after-fuse" not in pipeline(1)
    # the existing passes keep their order
    assert [n for n in names if not n.startswith("zz-")] == CANONICAL


def test_unknown_names_and_cycles_in_the_constraints_are_clear_errors(own_registry: None) -> None:
    def plain(name: str) -> type[NamuPass]:
        return type(name, (NamuPass,), {"call": lambda self, model: self.result(model)})

    register("zz-ghost", "test", after=("no-such-pass",))(plain("GhostPass"))
    with pytest.raises(ValueError, match="pass 'zz-ghost' is ordered against 'no-such-pass', which is not a registered pass"):
        pipeline()
    registry._REGISTRY.pop("zz-ghost")
    register("zz-sorted", "test", after=("sort-topologically",))(plain("SortedPass"))
    with pytest.raises(ValueError, match="'sort-topologically', which runs by name only"):
        pipeline()
    registry._REGISTRY.pop("zz-sorted")
    register("zz-loop", "test", after=("plan-lifetimes",), before=("partition",))(plain("LoopPass"))
    with pytest.raises(ValueError, match="form a cycle: .*plan-lifetimes -> zz-loop -> partition -> "):
        pipeline()


def test_malformed_registrations_are_refused() -> None:
    cls = type("SelfPass", (NamuPass,), {})
    with pytest.raises(ValueError, match="cannot run before or after itself"):
        register("zz-self", "test", after=("zz-self",))(cls)
    with pytest.raises(TypeError, match="after= takes a tuple of pass names"):
        register("zz-string", "test", after="fuse-tasks")(cls)
    with pytest.raises(ValueError, match="group must be a kebab-case name"):
        register("zz-group", "test", after=(), group="Clean Up")(cls)


def test_levels_keep_the_required_passes() -> None:
    assert pipeline(0) == [n for n in CANONICAL if n not in OPTIMIZATIONS]
    assert pipeline(1) == [n for n in CANONICAL if OPTIMIZATIONS.get(n, 0) <= 1]
    for name, level in OPTIMIZATIONS.items():
        assert get(name).level == level and not get(name).required


def test_disabling_passes() -> None:
    assert "fuse-tasks" not in pipeline(2, ["fuse-tasks"])
    with pytest.raises(ValueError, match="pass 'partition' is required"):
        pipeline(2, ["partition"])
    with pytest.raises(KeyError, match="unknown pass 'nope'"):
        pipeline(2, ["nope"])
    with pytest.raises(ValueError, match="opt_level must be 0, 1 or 2"):
        pipeline(3)


def test_registered_passes_follow_the_conventions() -> None:
    for info in registered():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", info.name)
        assert info.cls.__name__.endswith("Pass")
        assert issubclass(info.cls, NamuPass)
        assert info.summary and "\n" not in info.summary
        assert info.cls.__doc__


def test_unknown_pass_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="registered passes: .*verify-structure"):
        get("no-such-pass")


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("verify-structure", "again")(type("AgainPass", (ir.passes.InPlacePass,), {}))


def test_pipeline_names_the_failing_pass(own_registry: None) -> None:

    class ExplodePass(ir.passes.InPlacePass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            raise RuntimeError("kaboom")

    register("explode-for-test", "always fails")(ExplodePass)
    model = parse("g (int64 x) => (int64 y) { y = Neg(x) }")
    with pytest.raises(namu.PassError, match="pass 'explode-for-test' failed: RuntimeError: kaboom") as caught:
        run_passes(model, ["verify-structure", "explode-for-test"])
    assert caught.value.pass_name == "explode-for-test"
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_pipeline_records_what_each_pass_did() -> None:
    model = parse("g (int64 x) => (int64 y) { dead = Add(x, x)  dead2 = Mul(dead, x)  y = Neg(x) }")
    _, records = run_passes(model, ["verify-structure", "eliminate-dead-code"])
    assert [(r.name, r.modified, r.changes) for r in records] == [
        ("verify-structure", False, 0),
        ("eliminate-dead-code", True, 2),
    ]
    assert all(r.seconds >= 0 for r in records)


@namu.task
def _double(x: int) -> int:
    return 2 * x


@namu.workflow
def _twice(x: int) -> int:
    return _double(_double(x))


def test_a_user_pass_runs_where_it_is_inserted(own_registry: None) -> None:
    seen: list[tuple[int, list[str]]] = []

    @register("count-task-calls", "counts task calls (a user's pass)")
    class CountTaskCallsPass(NamuPass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            calls = [n for n in model.graph if n.op_type == "Task"]
            seen.append((len(calls), list(self.context.pipeline)))
            return self.result(model)

    passes = pipeline()
    passes.insert(passes.index("fuse-tasks"), "count-task-calls")
    art = namu.compile(_twice, passes=passes)
    assert art(3) == 12
    assert seen == [(2, passes)]  # before fuse-tasks: both calls are still there
    assert art.passport.passes == passes
    assert [r.name for r in art.pass_records] == passes


def test_the_how_to_add_a_pass_example(own_registry: None) -> None:
    """The example of docs/architecture.md, "How to add a pass"."""
    calls_key = "example.task_calls"

    def count(model: ir.Model) -> int:
        return sum(1 for node in walk(model) if node.domain == NAMU_DOMAIN and node.op_type == "Task")

    @register(
        "count-task-calls",
        "the model's metadata `example.task_calls` holds how many task calls it makes",
        after=("resolve-slots",),  # slot calls have become task calls
    )
    class CountTaskCallsPass(NamuPass):
        """Count the task calls of the model, bodies and functions included.

        Guarantees:
            ``example.task_calls`` is the number of ``namu.Task`` nodes.
        """

        def call(self, model: ir.Model) -> ir.passes.PassResult:
            text = str(count(model))
            if model.metadata_props.get(calls_key) != text:
                model.metadata_props[calls_key] = text
                self.changed()
            return self.result(model)

        def ensures(self, model: ir.Model) -> None:
            if model.metadata_props.get(calls_key) != str(count(model)):
                self.broken(f"{calls_key} is not the number of task calls")

    names = pipeline()
    assert names.index("count-task-calls") == names.index("resolve-slots") + 1
    assert "count-task-calls" not in pipeline(1)  # level=2 by default: an optimization's level
    art = namu.compile(_twice, config=namu.CompileConfig(check_guarantees=True))
    assert art.model.metadata_props[calls_key] == "2"
    assert art(3) == 12
    assert "count-task-calls" in art.passport.passes
