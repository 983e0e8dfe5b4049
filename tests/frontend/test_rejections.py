"""Constructs a workflow body cannot use: each is rejected at compile time, at its line.

Every offending line carries a unique ``# <tag>`` marker comment; the expected line
number is found by searching this file for the marker, and the expected column by
searching that line for the text of the offending construct. So the assertions stay
exact when code above them moves.
"""

import inspect
import math
import os
import re
from pathlib import Path

import pytest

import namu
from tests.frontend.wf_samples import add

HERE = os.path.abspath(__file__)
_LINES = Path(HERE).read_text(encoding="utf-8").splitlines()

MODULE_CONSTANT = 7
NOT_A_LITERAL = {1, 2, 3}


def helper(x: int) -> int:
    """A plain function: not a task, so a workflow cannot call it."""
    return x + 1


@namu.task
def pair(x: int) -> tuple[int, int]:
    return x, x + 1


@namu.task
def flag(x: int) -> bool:
    return x > 0


def marker_line(tag: str) -> int:
    """The 1-based line number of the unique line carrying the comment ``# <tag>``."""
    pattern = re.compile(rf"#\s<{re.escape(tag)}>(\s|$)")
    hits = [i + 1 for i, line in enumerate(_LINES) if pattern.search(line)]
    assert len(hits) == 1, f"marker <{tag}> found {len(hits)} times"
    return hits[0]


def expect_rejection(wf: namu.Workflow, tag: str, construct: str, reason: str, *, via: str = "compile") -> namu.WorkflowSyntaxError:
    """Compile ``wf``; assert a WorkflowSyntaxError at the marked line, at ``construct``.

    Args:
        tag: the marker on the offending line.
        construct: the text the error must point at (its first occurrence on the line).
        reason: a fragment the error's reason must contain (case-insensitive).
        via: ``"compile"`` for ``namu.compile(wf)``, ``"method"`` for ``wf.compile()``.
    """
    with pytest.raises(namu.WorkflowSyntaxError) as info:
        if via == "compile":
            namu.compile(wf)
        else:
            wf.compile()
    err = info.value
    line = marker_line(tag)
    source = _LINES[line - 1]
    col = source.index(construct)
    assert err.filename == HERE
    assert (err.lineno, err.col_offset) == (line, col), str(err)
    assert err.source_line == source
    assert reason.lower() in err.reason.lower(), err.reason
    text = str(err)
    assert HERE in text
    assert f":{line}:" in text
    assert text.startswith(f"{HERE}:{line}:{col + 1}: ")
    head, shown, caret = text.splitlines()
    assert shown == "    " + source.strip()
    assert caret.strip() == "^"
    # the caret sits under the first character of the offending construct
    assert shown[caret.index("^") :].startswith(construct), (shown, caret)
    return err


# ------------------------------------------------------------------ statements
def test_with():
    @namu.workflow
    def wf(path: str) -> str:
        with open(path) as f:  # <with>
            text = f
        return text

    expect_rejection(wf, "with", "with", "`with`")


def test_global():
    @namu.workflow
    def wf(x: int) -> int:
        global MODULE_CONSTANT  # <global>
        return add(x, MODULE_CONSTANT)

    expect_rejection(wf, "global", "global", "`global`")


def test_nonlocal():
    counter = 0

    @namu.workflow
    def wf(x: int) -> int:
        nonlocal counter  # <nonlocal>
        counter = add(counter, x)
        return counter

    expect_rejection(wf, "nonlocal", "nonlocal", "`nonlocal`")


def test_import_in_body():
    @namu.workflow
    def wf(x: int) -> int:
        import math  # <import>

        return add(x, 1)

    expect_rejection(wf, "import", "import", "imports")


def test_from_import_in_body():
    @namu.workflow
    def wf(x: int) -> int:
        from math import pi  # <from-import>

        return add(x, 1)

    expect_rejection(wf, "from-import", "from", "imports")


def test_nested_def():
    @namu.workflow
    def wf(x: int) -> int:
        def inner(y):  # <nested-def>
            return y

        return add(x, 1)

    expect_rejection(wf, "nested-def", "def inner", "nested function")


def test_class_def():
    @namu.workflow
    def wf(x: int) -> int:
        class Box:  # <class>
            pass

        return add(x, 1)

    expect_rejection(wf, "class", "class", "class definitions")


def test_del_of_an_item_of_a_parameter():
    @namu.workflow
    def wf(d: dict) -> dict:
        del d["k"]  # <del>
        return d

    expect_rejection(wf, "del", 'd["k"]', "`del` of an item")


def test_match_class_pattern_of_a_class_that_is_not_builtin():
    @namu.workflow
    def wf(x: int) -> int:
        match x:
            case namu.Artifact():  # <match>
                y = 10
            case _:
                y = 20
        return y

    expect_rejection(wf, "match", "namu.Artifact", "builtin classes only")


def test_unreachable_code_after_return():
    @namu.workflow
    def wf(x: int) -> int:
        return add(x, 1)
        y = add(x, 2)  # <unreachable>

    expect_rejection(wf, "unreachable", "y = add", "unreachable")


# ------------------------------------------------------------------ assignments
def test_attribute_assignment():
    @namu.workflow
    def wf(x: int) -> int:
        x.a = 1  # <attr-assign>
        return x

    expect_rejection(wf, "attr-assign", "x.a", "attribute assignment")


def test_subscript_assignment():
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        xs[0] = 1  # <subscript-assign>
        return xs

    expect_rejection(wf, "subscript-assign", "xs[0]", "subscript assignment")


def test_unpack_count_mismatch():
    @namu.workflow
    def wf(x: int) -> int:
        a, b = x, x, x  # <unpack-count>
        return a

    expect_rejection(wf, "unpack-count", "x, x, x", "cannot unpack 3 values into 2")


def test_unpack_task_tuple_count_mismatch():
    @namu.workflow
    def wf(x: int) -> int:
        a, b, c = pair(x)  # <unpack-task-count>
        return a

    expect_rejection(wf, "unpack-task-count", "a, b, c", "cannot unpack")


# ------------------------------------------------------------------ expressions
def test_lambda():
    @namu.workflow
    def wf(x: int) -> int:
        f = lambda y: y + 1  # <lambda>  # noqa: E731
        return x

    expect_rejection(wf, "lambda", "lambda", "lambda")


def test_attribute_read_of_a_module_level_name():
    @namu.workflow
    def wf(x: int) -> float:
        return x + math.sqrt  # <attr-global>

    expect_rejection(wf, "attr-global", "math.sqrt", "attribute reads are supported on workflow values and on literal constants")


def test_special_attribute_read():
    @namu.workflow
    def wf(x: int):
        return x.__class__  # <attr-dunder>

    expect_rejection(wf, "attr-dunder", "x.__class__", "special attribute `__class__`")


def test_walrus_in_a_comprehension():
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return len([(y := add(x, 1)) for x in xs])  # <walrus-comp>

    expect_rejection(wf, "walrus-comp", "y :=", "the whole value of an assignment")


def test_generator_expression_outside_a_builtin_call():
    @namu.workflow
    def wf(xs: list[int]):
        g = (add(x, 1) for x in xs)  # <genexp>
        return g

    expect_rejection(wf, "genexp", "(add(x", "the argument of a builtin or a method")


def test_is_comparison_against_a_value_other_than_none():
    @namu.workflow
    def wf(x: int, y: int) -> bool:
        return x is y  # <is>

    expect_rejection(wf, "is", "x is y", "`is` is supported in a workflow only against None")


def test_integer_literal_too_big():
    @namu.workflow
    def wf(x: int) -> int:
        return add(x, 100000000000000000000000)  # <bigint>

    expect_rejection(wf, "bigint", "100000000000000000000000", "64 bits")


# ------------------------------------------------------------------ calls
def test_calling_a_plain_function():
    @namu.workflow
    def wf(x: int) -> int:
        return helper(x)  # <plain-call>

    expect_rejection(wf, "plain-call", "helper(x)", "not a @namu.task")


def test_calling_print():
    @namu.workflow
    def wf(x: int) -> int:
        print(x)  # <print>
        return x

    expect_rejection(wf, "print", "print(x)", "cannot call `print`")


def test_calling_a_method_that_is_not_known_to_change_nothing():
    @namu.workflow
    def wf(s: str) -> str:
        return s.frobnicate()  # <method>

    expect_rejection(wf, "method", "s.frobnicate", "only methods that change nothing")


def test_calling_a_mutating_method():
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        xs.append(1)  # <mutating-method>
        return xs

    expect_rejection(wf, "mutating-method", "xs.append(1)", "`xs = xs + [item]`")


def test_isinstance_of_a_class_that_is_not_builtin():
    @namu.workflow
    def wf(x: int) -> bool:
        return isinstance(x, namu.Workflow)  # <isinstance-class>

    expect_rejection(wf, "isinstance-class", "namu.Workflow", "builtin classes only")


def test_calling_a_workflow_value():
    @namu.workflow
    def wf(x: int) -> int:
        f = add(x, 1)
        return f(2)  # <call-value>

    expect_rejection(wf, "call-value", "f(2)", "is a workflow value")


def test_star_args_in_call():
    @namu.workflow
    def wf(xs: list[int]) -> int:
        return add(*xs)  # <star-args>

    expect_rejection(wf, "star-args", "*xs", "a length known when compiling")


def test_double_star_kwargs_in_call():
    @namu.workflow
    def wf(kw: dict) -> int:
        return add(**kw)  # <star-kwargs>

    # the error points at the mapping expression after `**`
    expect_rejection(wf, "star-kwargs", "kw)", "keys known when compiling")


def test_task_wrong_arity_missing_argument():
    @namu.workflow
    def wf(x: int) -> int:
        return add(x)  # <arity-missing>

    err = expect_rejection(wf, "arity-missing", "add(x)", "missing")
    assert "'b'" in err.reason


def test_task_wrong_arity_too_many():
    @namu.workflow
    def wf(x: int) -> int:
        return add(x, 1, 2)  # <arity-many>

    expect_rejection(wf, "arity-many", "add(x, 1, 2)", "too many")


def test_task_unknown_keyword():
    @namu.workflow
    def wf(x: int) -> int:
        return add(x, b=1, c=1)  # <arity-kw>

    expect_rejection(wf, "arity-kw", "add(x, b=1, c=1)", "unexpected keyword")


def test_task_used_as_a_value():
    @namu.workflow
    def wf(x: int) -> int:
        f = add  # <task-value>
        return x

    expect_rejection(wf, "task-value", "add", "can only be called")


def test_unknown_name():
    @namu.workflow
    def wf(x: int) -> int:
        return add(x, no_such_name)  # <unknown-name>

    expect_rejection(wf, "unknown-name", "no_such_name", "not defined")


def test_unknown_callee():
    @namu.workflow
    def wf(x: int) -> int:
        return no_such_task(x)  # <unknown-callee>

    expect_rejection(wf, "unknown-callee", "no_such_task", "not defined")


def test_non_literal_module_global():
    @namu.workflow
    def wf(x: int) -> int:
        s = NOT_A_LITERAL  # <non-literal-global>
        return x

    expect_rejection(wf, "non-literal-global", "NOT_A_LITERAL", "is a set")


# ------------------------------------------------------------------ scoping and typing
def test_variable_assigned_in_one_branch_used_after():
    @namu.workflow
    def wf(x: int) -> int:
        if x > 0:  # <one-branch>
            y = add(x, 1)
        return y

    expect_rejection(wf, "one-branch", "if x", "only in some branches")


def test_variable_assigned_in_elif_branch_only():
    @namu.workflow
    def wf(x: int) -> int:
        if x > 0:
            y = add(x, 1)
        elif x < -5:  # <elif-branch>
            z = add(x, 2)
        else:
            y = 0
        return y

    # the inner `if` (the elif) is the one whose branches disagree about `y`
    expect_rejection(wf, "elif-branch", "elif", "only in some branches")


def test_loop_variable_used_after_for():
    @namu.workflow
    def wf(xs: list[int]) -> int:
        acc = 0
        for x in xs:  # <loop-var-after>
            acc = add(acc, x)
        return add(acc, x)

    expect_rejection(wf, "loop-var-after", "x in xs", "used after the loop")


def test_variable_first_assigned_in_loop_used_after():
    @namu.workflow
    def wf(n: int) -> int:
        i = 0
        while i < n:  # <first-in-loop>
            last = add(i, 10)
            i = add(i, 1)
        return last

    expect_rejection(wf, "first-in-loop", "while", "first assigned inside the `while` loop")


def test_name_used_before_assignment():
    @namu.workflow
    def wf(x: int) -> int:
        y = add(z, 1)  # <before-assign>
        z = x
        return y

    expect_rejection(wf, "before-assign", "z, 1", "before it is assigned")


# ------------------------------------------------------------------ signature
def test_non_literal_default():
    @namu.workflow
    def wf(x: int, y: object = object()) -> int:  # <bad-default>
        return x

    expect_rejection(wf, "bad-default", "y: object", "must be a literal")


def test_mutable_list_default():
    """Python shares one default list between calls; a compiled run cannot."""
    @namu.workflow
    def wf(x: int, xs: list = [1]) -> int:  # <mutable-default>  # noqa: B006
        return add(x, 1)

    err = expect_rejection(wf, "mutable-default", "[1]", "the default of `xs` is a mutable list")
    assert "use None" in err.reason and "or a tuple" in err.reason


def test_mutable_dict_default_and_list_inside_a_tuple_default():
    @namu.workflow
    def wf(x: int, options: dict = {"k": 1}) -> int:  # <mutable-dict-default>  # noqa: B006
        return x

    expect_rejection(wf, "mutable-dict-default", '{"k"', "mutable dict")

    @namu.workflow
    def wf2(x: int, pair: tuple = (1, [2])) -> int:  # <mutable-in-tuple-default>
        return x

    expect_rejection(wf2, "mutable-in-tuple-default", "(1, [2])", "mutable tuple")


@namu.workflow
def _sub_with_mutable_default(x: int, seen: dict = {}) -> int:  # <sub-mutable-default>  # noqa: B006
    return x


def test_mutable_default_of_a_sub_workflow():
    @namu.workflow
    def wf(x: int) -> int:
        return _sub_with_mutable_default(x)

    expect_rejection(wf, "sub-mutable-default", "{}", "mutable dict")


def test_local_name_shadowing_a_task_is_read_before_assignment():
    """Assigned anywhere in the body, a name is local to all of it (UnboundLocalError)."""
    @namu.workflow
    def wf(n: int) -> int:
        x = add(n, 1)  # <shadowed-task>
        add = 3  # <shadowing-assignment>
        return x + add

    err = expect_rejection(wf, "shadowed-task", "add(n", "`add` is local in the workflow")
    assert f"assigned at line {marker_line('shadowing-assignment')}" in err.reason
    assert "UnboundLocalError" in err.reason
    with pytest.raises(UnboundLocalError):
        wf.fn(1)


def test_local_name_shadowing_a_constant_or_a_module_is_read_before_assignment():
    @namu.workflow
    def wf(n: int) -> int:
        y = add(n, MODULE_CONSTANT)  # <shadowed-constant>
        if n > 0:
            MODULE_CONSTANT = 3  # <constant-assigned-in-branch>
        return y

    err = expect_rejection(wf, "shadowed-constant", "MODULE_CONSTANT", "is local in the workflow")
    assert f"assigned at line {marker_line('constant-assigned-in-branch')}" in err.reason

    @namu.workflow
    def wf2(xs: list[float]) -> int:
        y = math.floor(xs)  # <shadowed-module>
        for math in xs:  # <module-as-loop-variable>
            y = add(y, 1)
        return y

    err = expect_rejection(wf2, "shadowed-module", "math.floor", "`math` is local in the workflow")
    assert f"assigned at line {marker_line('module-as-loop-variable')}" in err.reason


# ------------------------------------------------------------------ definition errors
def test_workflow_on_async_def():
    with pytest.raises(namu.TaskDefinitionError, match="plain `def`"):

        @namu.workflow
        async def wf(x: int) -> int:
            return x


def test_workflow_on_generator():
    with pytest.raises(namu.TaskDefinitionError, match="generator"):

        @namu.workflow
        def wf(x: int):
            yield x


def test_workflow_on_a_task():
    with pytest.raises(namu.TaskDefinitionError):
        namu.workflow(add)


def test_workflow_on_a_non_function():
    with pytest.raises(namu.TaskDefinitionError):
        namu.workflow(len)


def test_compile_non_workflow():
    with pytest.raises(namu.TaskDefinitionError):
        namu.compile(helper)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retries": 1.5},
        {"on_error": "ignore"},
        {"bogus": 1},
        {"timeout_s": 0},
        {"timeout_s": -2.0},
        {"pure": "yes"},
        {"cache": 1},
        {"name": "1-bad name"},
    ],
    ids=lambda o: ",".join(f"{k}={v!r}" for k, v in o.items()),
)
def test_invalid_task_options(options):
    with pytest.raises(namu.TaskDefinitionError) as info:

        @namu.task(**options)
        def t(x: int) -> int:
            return x

    # the message names the offending option
    assert next(iter(options)) in str(info.value)


def test_task_decorated_twice():
    with pytest.raises(namu.TaskDefinitionError, match="already a namu task"):
        namu.task(add)


def test_task_options_are_a_type_error_too():
    """TaskDefinitionError is also a TypeError, so generic handlers still catch it."""
    with pytest.raises(TypeError):
        namu.task(retries=-1)


# ------------------------------------------------------------------ the error object
def test_error_is_a_namu_error_and_pickles():
    import pickle

    @namu.workflow
    def wf(x: int) -> int:
        print(x)  # <pickle>
        return x

    err = expect_rejection(wf, "pickle", "print(x)", "cannot call")
    assert isinstance(err, namu.NamuError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.filename, again.lineno, again.col_offset, str(again)) == (
        err.filename,
        err.lineno,
        err.col_offset,
        str(err),
    )


def test_module_level_workflow_line_matches_inspect():
    """The reported line agrees with ``inspect`` for a workflow whose source we locate."""
    err = expect_rejection(_module_level_bad, "module-level", "lambda", "lambda")
    _, first = inspect.getsourcelines(_module_level_bad.fn)
    assert err.lineno == first + 3  # decorator, def, docstring, then the offending line


@namu.workflow
def _module_level_bad(x: int) -> int:
    """A module-level workflow: no column shift from dedenting."""
    f = lambda y: y  # <module-level>  # noqa: E731
    return x


def test_every_expression_is_either_lowered_or_rejected_with_a_message() -> None:
    """The frontend's expression table: each ``ast`` class has one lowering method or one
    rejection message, never both."""
    from namu.frontend.expressions import _LOWERINGS
    from namu.frontend.lower import _Lowering
    from namu.frontend.rejections import REJECTED_EXPRESSIONS

    assert all(callable(getattr(_Lowering, method, None)) for method in _LOWERINGS.values())
    assert not set(_LOWERINGS) & set(REJECTED_EXPRESSIONS)
