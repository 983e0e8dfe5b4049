"""infer-types: types flow through every op, branch and loop; task calls match annotations."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import onnx
import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.ir.metadata import SPAN_KEY, TASKS_KEY
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.serde import to_proto
from namu.ir.types import TYPE_KEY, ValueType, parse_type, type_of
from namu.ir.types import accepts, join
from tests.cli.test_cli import assert_error, namu_cli
from tests.conftest import run_both
from tests.passes.conftest import lowered, parse, run_pass

# ---------------------------------------------------------------------- helpers
Signature = tuple[list[tuple[str, str]] | None, str]  # ([(param, type)], returns)


def with_tasks(model: ir.Model, **tasks: Signature) -> ir.Model:
    """Replace the task table by one giving each task its parameter and return types
    (a parameter named ``"x="`` has a default)."""
    entries = []
    for key, (params, returns) in tasks.items():
        entry = {"key": key, "module": "m", "qualname": key, "file": "", "digest": "sha256:" + key, "returns": returns}
        if params is not None:
            entry["params"] = [
                {"name": name.rstrip("="), "type": vtype, "has_default": name.endswith("=")} for name, vtype in params
            ]
        entries.append(entry)
    model.metadata_props[TASKS_KEY] = json.dumps({"tasks": entries})
    return model


def checked(model: ir.Model, error: str) -> namu.TypeCheckError | None:
    """Run infer-types on ``model``: it passes when ``error`` is "", else raises exactly
    ``error`` (returned, for more checks)."""
    if not error:
        run_pass("infer-types", model)
        return None
    with pytest.raises(namu.TypeCheckError) as caught:
        run_pass("infer-types", model)
    assert caught.value.reason == error
    return caught.value


def values(graph: ir.Graph) -> Iterator[ir.Value]:
    """Every value of ``graph`` and its subgraphs: graph inputs, then node outputs."""
    yield from graph.inputs
    for node in graph:
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                yield from values(attr.as_graph())
        yield from node.outputs


def types(graph: ir.Graph) -> dict[str, str]:
    return {v.name: str(type_of(v)) for v in values(graph) if v.type is not None or TYPE_KEY in v.metadata_props}


def infer(text: str, **tasks: Signature) -> ir.Model:
    model = with_tasks(parse(textwrap.dedent(text)), **tasks)
    run_pass("infer-types", model)
    return model


# ---------------------------------------------------------------------- propagation
EVERY_OP = """
g (int64 x, string s, bool c, seq(int64) xs) => (out) {
  a = namu.Task <task = "inc"> (x)
  f = namu.Task <task = "half"> (a)
  t = namu.Tuple(a, s)
  p, q = namu.Unpack(t)
  one = Constant <value_int = 1> ()
  g = namu.GetItem(t, one)
  pair = namu.Tuple(f, f)
  h = namu.GetItem(pair, x)
  l = SequenceConstruct(a, p)
  at = SequenceAt(l, x)
  n = SequenceLength(l)
  halves = namu.Map(xs) <body = b1 (item) => (r) { r = namu.Task <task = "half"> (item) }>
  nested = namu.Map(xs) <flatten = 1, body = b2 (item2) => (r2) {
    r2 = namu.Map(xs) <body = b3 (inner) => (r3) { r3 = namu.Task <task = "word"> (inner) }>
  }>
  chars = namu.ToList(s)
  phi = If (c) <then_branch = t1 () => (o1) { o1 = Identity(a) }, else_branch = e1 () => (o2) { o2 = Identity(n) }>
  mixed = namu.If (c) <then_branch = t2 () => (o3) { o3 = namu.Identity(f) }, else_branch = e2 () => (o4) { o4 = namu.Identity(s) }>
  zero = Constant <value = int64 {0}> ()
  true = Constant <value = bool {1}> ()
  acc = Loop (n, true, zero) <body = lb (i, cin, carried) => (cout, next) {
    cout = Identity(cin)
    next = Add(carried, i)
  }>
  size = namu.Len(t)
  bad = namu.Truth(s)
  eq = Equal(a, x)
  none = namu.None()
  d = namu.Dict <keys = ["k"]> (a)
  out = Identity(acc)
}
"""

SIGNATURES: dict[str, Signature] = {
    "inc": ([("x", "int")], "int"),
    "half": ([("x", "float")], "float"),
    "word": ([("x", "object")], "str"),
}


def test_types_every_untyped_value_from_the_annotations() -> None:
    model = infer(EVERY_OP, **SIGNATURES)
    assert types(model.graph) == {
        "x": "int", "s": "str", "c": "bool", "xs": "list[int]",
        "a": "int", "f": "float", "t": "tuple[int, str]", "p": "int", "q": "str", "one": "int",
        "g": "str", "pair": "tuple[float, float]", "h": "object",
        "l": "list[int]", "at": "int", "n": "int",
        "item": "int", "r": "float", "halves": "list[float]",
        "item2": "int", "inner": "int", "r3": "str", "r2": "list[str]", "nested": "list[str]",
        "chars": "list[str]",
        "o1": "int", "o2": "int", "phi": "int",
        "o3": "float", "o4": "str", "mixed": "object",
        "zero": "int", "true": "bool",
        "i": "int", "cin": "bool", "carried": "int", "cout": "bool", "next": "int", "acc": "int",
        "size": "int", "bad": "bool", "eq": "bool", "none": "NoneType", "d": "dict", "out": "int",
    }


def test_the_typed_model_is_valid_onnx() -> None:
    model = infer(EVERY_OP, **SIGNATURES)
    onnx.checker.check_model(to_proto(model), full_check=True)


def test_counts_each_value_it_types_and_is_idempotent() -> None:
    model = with_tasks(parse('g (int64 x) => (y) { a = namu.Task <task = "inc"> (x)  y = Neg(a) }'), inc=SIGNATURES["inc"])
    assert run_pass("infer-types", model).modified
    assert types(model.graph) == {"x": "int", "a": "int", "y": "int"}
    assert not run_pass("infer-types", model).modified


def test_a_standard_op_keeps_a_type_onnx_cannot_hold_in_memory_only() -> None:
    # The phi of an int and a str is `object`, which a standard If output cannot carry.
    model = infer(
        """
        g (bool c, int64 x, string s) => (z) {
          y = If (c) <then_branch = t () => (a) { a = Identity(x) }, else_branch = e () => (b) { b = Identity(s) }>
          z = namu.Task <task = "inc"> (y)
        }""",
        inc=SIGNATURES["inc"],
    )
    y = next(iter(model.graph)).outputs[0]
    assert y.type is None and TYPE_KEY not in y.metadata_props
    assert types(model.graph)["z"] == "int"  # and `object` was accepted where int is annotated


def test_join_of_branches_keeps_what_they_share() -> None:
    model = infer(
        """
        g (bool c, seq(int64) xs, seq(double) fs) => (y) {
          y = namu.If (c) <then_branch = t () => (a) { a = Identity(xs) }, else_branch = e () => (b) { b = Identity(fs) }>
        }"""
    )
    assert types(model.graph)["y"] == "list[object]"


def test_functions_are_typed_and_their_calls_take_their_outputs() -> None:
    model = infer(
        """
        g (int64 x) => (y) { y = namu.workflow.f(x) }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        f (v) => (w) { w = namu.Task <task = "half"> (v) }""",
        half=SIGNATURES["half"],
    )
    assert types(model.graph)["y"] == "float"
    function = next(iter(model.functions.values()))
    assert str(type_of(function.outputs[0])) == "float"


# ---------------------------------------------------------------------- the frontend agrees
@namu.task
def inc(x: int) -> int:
    return x + 1


@namu.task
def split(text: str) -> list[str]:
    return text.split()


@namu.task
def pair(a: int, b: str) -> tuple[int, str]:
    return a, b


@namu.task
def anything(value):
    return value


@namu.task
def scale(x: float, *extra: int, factor: float = 1.0, **named: int) -> float:
    return x * factor + sum(extra) + sum(named.values())


@namu.workflow
def everything(n: int, text: str, flag: bool = True) -> dict:
    words = [w for w in split(text)]
    sizes = [inc(len(w)) for w in words]
    total = 0
    for s in sizes:
        total = total + s
    k, label = pair(total, text)
    first = pair(n, text)[0]
    if flag and k > 3:
        picked = scale(k, 1, 2, factor=0.5, bonus=3)
    else:
        picked = scale(n / 2)
    while n < 3:
        n = inc(n)
    opaque = anything([n, text])
    return {"words": words, "sizes": sizes, "total": total, "label": label, "first": first,
            "picked": picked, "n": n, "opaque": opaque, "chars": [c for c in text]}


def _strip_types(model: ir.Model) -> dict[str, str]:
    """Forget the type of every node output but annotation casts; return the old types."""
    old = {}
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if (node.domain, node.op_type) == (NAMU_DOMAIN, "Identity"):
            continue
        for value in node.outputs:
            old[value.name] = str(type_of(value))
            value.type, value.shape = None, None
            value.metadata_props.pop(TYPE_KEY, None)
            value.meta.pop("namu.vtype", None)
    return old


def test_the_frontends_types_are_the_ones_it_derives() -> None:
    model, _ = lowered(everything, upto="infer-types")
    assert not run_pass("infer-types", model).modified  # the frontend typed everything
    old = _strip_types(model)
    run_pass("infer-types", model)
    assert {name: t for name, t in types(model.graph).items() if name in old} == old
    onnx.checker.check_model(to_proto(model), full_check=True)


def test_checked_workflows_still_run() -> None:
    expected = everything.fn(1, "a bb ccc")
    assert run_both(namu.compile(everything), 1, "a bb ccc").value == expected


# ---------------------------------------------------------------------- task calls
# (graph inputs, argument expression building `v` from them, annotation, error or "")
ARGUMENTS = [
    ("int64 x", "v = Identity(x)", "int", ""),
    ("int64 x", "v = Identity(x)", "float", ""),
    ("bool x", "v = Identity(x)", "float", ""),
    ("bool x", "v = Identity(x)", "int", ""),
    ("double x", "v = Identity(x)", "complex", ""),
    ("double x", "v = Identity(x)", "int", "expects int, got float"),
    ("int64 x", "v = Identity(x)", "bool", "expects bool, got int"),
    ("string x", "v = Identity(x)", "int", "expects int, got str"),
    ("string x", "v = Identity(x)", "object", ""),
    ("string x", "v = Identity(x)", "pathlib.Path", ""),
    ("seq(int64) x", "v = Identity(x)", "list[int]", ""),
    ("seq(int64) x", "v = Identity(x)", "list[float]", ""),
    ("seq(int64) x", "v = Identity(x)", "list", ""),
    ("seq(int64) x", "v = Identity(x)", "collections.abc.Sequence", ""),
    ("seq(string) x", "v = Identity(x)", "list[int]", "expects list[int], got list[str]"),
    ("seq(int64) x", "v = Identity(x)", "str", "expects str, got list[int]"),
    ("int64 x", 'v = namu.Dict <keys = ["k"]> (x)', "dict", ""),
    ("int64 x", 'v = namu.Dict <keys = ["k"]> (x)', "int", "expects int, got dict"),
    ("int64 x", "v = namu.None()", "int", "expects int, got NoneType"),
    ("int64 x", "v = namu.List(x)", "str", "expects str, got list"),
    ("int64 x", 'v = namu.Task <task = "opaque"> (x)', "int", ""),
    ("int64 x, string s", "v = namu.Tuple(x, s)", "tuple[int, str]", ""),
    ("int64 x, string s", "v = namu.Tuple(x, s)", "tuple", ""),
    ("int64 x, string s", "v = namu.Tuple(x, x)", "tuple[int, str]", "expects tuple[int, str], got tuple[int, int]"),
    ("int64 x, string s", "v = namu.Tuple(x, s)", "list[int]", "expects list[int], got tuple[int, str]"),
]


@pytest.mark.parametrize(("inputs", "argument", "annotation", "error"), ARGUMENTS)
def test_arguments_are_checked_against_the_annotation(inputs: str, argument: str, annotation: str, error: str) -> None:
    text = f'g ({inputs}) => (y) {{ {argument}  y = namu.Task <task = "f"> (v) }}'
    model = with_tasks(parse(text), f=([("x", annotation)], "object"), opaque=([("x", "object")], "object"))
    list(model.graph)[-1].metadata_props[SPAN_KEY] = "/src/wf.py:4:9"
    caught = checked(model, error and f"task 'f' parameter 'x' {error}")
    assert caught is None or caught.span == "/src/wf.py:4:9"


BINDING = [
    # (call attributes, arguments, error or "")
    ('kwnames = ["b"]', "x, s", ""),
    ('kwnames = ["a"]', "s, x", "task 'f' got multiple values for argument 'a'"),
    ('kwnames = ["b", "a"]', "s, x", ""),
    ('kwnames = ["b"]', "x, x", "task 'f' parameter 'b' expects str, got int"),
    ("", "x", "task 'f' is missing the argument 'b'"),
    ("", "x, s, s", "task 'f' takes 2 positional arguments but 3 were given"),
    ('kwnames = ["c"]', "x, s, s", "task 'f' got an unexpected keyword argument 'c'"),
]


@pytest.mark.parametrize(("attrs", "args", "error"), BINDING)
def test_keyword_arguments_bind_by_name(attrs: str, args: str, error: str) -> None:
    text = f'g (int64 x, string s) => (y) {{ y = namu.Task <task = "f"{", " + attrs if attrs else ""}> ({args}) }}'
    checked(with_tasks(parse(text), f=([("a", "int"), ("b", "str")], "object")), error)


VARIADIC = [
    ("", "x, x, x", ""),
    ("", "x, x, s", "task 'f' parameter 'rest' expects int, got str"),
    ('kwnames = ["k", "j"]', "x, d, x", ""),
    ('kwnames = ["k"]', "x, s", "task 'f' parameter 'k' expects float, got str"),
    ('kwnames = ["opt"]', "x, s", ""),
    ('kwnames = ["opt"]', "x, x", "task 'f' parameter 'opt' expects str, got int"),
]


@pytest.mark.parametrize(("attrs", "args", "error"), VARIADIC)
def test_star_args_and_star_star_kwargs_check_each_argument(attrs: str, args: str, error: str) -> None:
    # def f(first: int, *rest: int, opt: str = "", **more: float)
    text = f'g (int64 x, string s, double d) => (y) {{ y = namu.Task <task = "f"{", " + attrs if attrs else ""}> ({args}) }}'
    params = [("first", "int"), ("*rest", "int"), ("opt=", "str"), ("**more", "float")]
    checked(with_tasks(parse(text), f=(params, "object")), error)


def test_tasks_without_recorded_parameters_are_not_checked() -> None:
    model = with_tasks(parse('g (string s) => (y) { y = namu.Task <task = "f"> (s, s, s) }'), f=(None, "int"))
    run_pass("infer-types", model)
    assert types(model.graph)["y"] == "int"


def test_the_frontend_records_parameters_and_returns() -> None:
    model, _ = lowered(everything, upto="infer-types")
    table = {t["key"]: t for t in json.loads(model.metadata_props[TASKS_KEY])["tasks"]}
    assert table["scale"]["params"] == [
        {"name": "x", "type": "float", "has_default": False},
        {"name": "*extra", "type": "int", "has_default": False},
        {"name": "factor", "type": "float", "has_default": True},
        {"name": "**named", "type": "int", "has_default": False},
    ]
    assert table["scale"]["returns"] == "float"
    assert table["anything"]["params"] == [{"name": "value", "type": "object", "has_default": False}]
    assert table["anything"]["returns"] == "object"
    assert table["pair"]["returns"] == "tuple[int, str]"


# ---------------------------------------------------------------------- other checks
@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            (
                'g (string c, int64 x) => (y) { y = namu.If (c) <then_branch = t () => (a) { a = Identity(x) },'
                " else_branch = e () => (b) { b = Identity(x) }> }"
            ),
            "If: the condition is str, not bool",
        ),
        (
            (
                "g (int64 n, int64 x) => (y) { y = namu.Loop (n, n, x) <body = b (i, c, v) => (co, w) {"
                " co = Identity(c)  w = Identity(v) }> }"
            ),
            "Loop: the condition is int, not bool",
        ),
        (
            (
                "g (int64 n, bool c, int64 x, string s) => (y) { y = namu.Loop (n, c, x) <body = b (i, ci, v) => (co, w) {"
                " co = Identity(ci)  w = Identity(s) }> }"
            ),
            "loop-carried value 'v' changes type inside the loop (int -> str)",
        ),
        ("g (int64 x) => (int64 y) { t = namu.Tuple(x, x)  a, b, c = namu.Unpack(t)  y = Identity(x) }",
         "cannot unpack tuple[int, int] into 3 values"),
        ('g (int64 x) => (int64 y) { y = namu.Task <task = "word"> (x) }', "Task: 'y' is typed int but holds str"),
        (
            (
                "g (int64 n, bool c, string s) => (y) { y = namu.Loop (n, c, s) <body = b (i, ci, int64 v) => (co, w) {"
                " co = Identity(ci)  w = Identity(v) }> }"
            ),
            "Loop: 'v' is typed int but holds str",
        ),
    ],
)
def test_rejects_inconsistent_types(text: str, error: str) -> None:
    model = with_tasks(parse(text), **SIGNATURES)
    with pytest.raises(namu.TypeCheckError) as caught:
        run_pass("infer-types", model)
    assert caught.value.reason == error


@namu.workflow(inline=False)
def counted(x: int) -> int:
    return inc(x)


@namu.workflow
def calls_counted_badly(s: str) -> int:
    return counted(s)


def test_sub_workflow_arguments_are_checked() -> None:
    with pytest.raises(namu.TypeCheckError, match=r"test_infer_types.py:\d+:\d+: sub-workflow 'counted' parameter 'x' expects int, got str"):
        namu.compile(calls_counted_badly)


# ---------------------------------------------------------------------- end to end
BAD_CALL = '''
import namu

@namu.task
def inc(x: int) -> int:
    return x + 1

@namu.workflow
def wrong(name: str) -> int:
    y = inc(1)
    return inc(name) + y
'''


def _load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    return module


def test_compile_rejects_a_str_passed_to_an_int_parameter_at_the_call(tmp_path: Path) -> None:
    path = tmp_path / "namu_bad_call.py"
    path.write_text(BAD_CALL)
    module = _load(path)
    with pytest.raises(namu.TypeCheckError) as caught:
        namu.compile(module.wrong)  # type: ignore[attr-defined]
    assert caught.value.span == f"{path}:11:12"
    assert str(caught.value).splitlines() == [
        f"{path}:11:12: task 'inc' parameter 'x' expects int, got str",
        "    return inc(name) + y",
        "           ^",
    ]


def test_the_cli_prints_one_error_line_at_the_call_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "namu_cli_bad_call.py").write_text(BAD_CALL)
    proc = namu_cli("compile", "namu_cli_bad_call.py:wrong", "-o", "wrong.onnx", cwd=tmp_path)
    line = assert_error(proc, 2)
    assert line == f"error: {tmp_path / 'namu_cli_bad_call.py'}:11:12: task 'inc' parameter 'x' expects int, got str"
    assert not (tmp_path / "wrong.onnx").exists()


# ---------------------------------------------------------------------- the relations
SCALARS = ["int", "float", "bool", "str"]
OPAQUE = ["object", "dict", "NoneType", "list", "tuple", "pathlib.Path", "complex"]


def _types() -> st.SearchStrategy[ValueType]:
    leaves = st.sampled_from(SCALARS + OPAQUE).map(parse_type)
    return st.recursive(
        leaves,
        lambda inner: inner.map(ValueType.list)
        | st.lists(inner, min_size=1, max_size=3).map(lambda items: ValueType.opaque("tuple", items=tuple(items))),
        max_leaves=6,
    )


@settings(max_examples=300, deadline=None)
@given(a=_types(), b=_types())
def test_join_is_an_upper_bound_that_accepts_both_sides(a: ValueType, b: ValueType) -> None:
    j = join(a, b)
    assert accepts(j, a) and accepts(j, b)
    assert j == join(b, a)
    assert join(a, a) == a


@settings(max_examples=300, deadline=None)
@given(t=_types())
def test_every_type_accepts_itself_and_object_is_consistent_with_all(t: ValueType) -> None:
    anything = ValueType.opaque()
    assert accepts(t, t)
    assert accepts(anything, t) and accepts(t, anything)


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("float", "int", True),
        ("int", "float", False),
        ("complex", "bool", True),
        ("list[float]", "list[bool]", True),
        ("list[int]", "list[float]", False),
        ("list[list[int]]", "list[list[str]]", False),
        ("list", "list[str]", True),
        ("list[str]", "list", True),
        ("dict", "NoneType", False),
        ("NoneType", "NoneType", True),
        ("mymodule.Thing", "int", True),
        ("int", "mymodule.Thing", True),
        ("tuple[int, str]", "tuple[int, str, str]", False),
        ("tuple[float]", "tuple[int]", True),
    ],
)
def test_accepts(expected: str, actual: str, ok: bool) -> None:
    assert accepts(parse_type(expected), parse_type(actual)) is ok
