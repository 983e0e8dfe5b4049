"""The ``calculator`` tool: arithmetic the model should not do in its head.

The expression is parsed with :mod:`ast` and evaluated by walking a whitelist of node
kinds -- numbers, ``+ - * / // % **``, unary ``+``/``-``, parentheses and a fixed set of
math functions and constants -- never by ``eval``. Anything else (a name, an attribute,
a lambda, a string) is refused with a :class:`~namu.errors.ToolError` that says what to
write instead. Integers stay exact (``25 * 47`` is ``1175``; ``2 ** 100`` prints all 31
digits); floats print with 15 significant digits (``0.1 + 0.2`` is ``0.3``).

Huge numbers are refused before they are computed: a power whose result would pass
:data:`MAX_DIGITS` digits, and any integer past it; a float that overflows to infinity
is refused too. An expression is at most :data:`MAX_LENGTH` characters.

In an agent file::

    tools:
      - calculator
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import Field

from namu.errors import ToolError
from namu.runtime.tools._typed import ToolInput, TypedTool
from namu.runtime.tools.base import Tool, ToolKit, ToolOptions

__all__ = ["MAX_DIGITS", "MAX_LENGTH", "CalculatorKit", "CalculatorOptions", "evaluate", "format_number"]

#: the most decimal digits an integer (a result or a step of one) may have
MAX_DIGITS = 4000
#: the longest expression, in characters
MAX_LENGTH = 2000
#: the most bits an integer may have (:data:`MAX_DIGITS` digits)
_MAX_BITS = int(MAX_DIGITS * math.log2(10))
#: the largest ``ndigits`` of ``round(x, ndigits)`` (``round(1, -10**9)`` computes 10**10**9)
_MAX_ROUND_DIGITS = 1000

_BINARY: dict[type[ast.operator], tuple[Callable[[Any, Any], Any], str]] = {
    ast.Add: (operator.add, "+"),
    ast.Sub: (operator.sub, "-"),
    ast.Mult: (operator.mul, "*"),
    ast.Div: (operator.truediv, "/"),
    ast.FloorDiv: (operator.floordiv, "//"),
    ast.Mod: (operator.mod, "%"),
    ast.Pow: (operator.pow, "**"),
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
#: operators Python has and arithmetic here does not, with what to write instead
_REFUSED_OPERATORS: dict[type[ast.AST], str] = {
    ast.BitXor: "^ is not supported; for a power write **",
    ast.BitOr: "| is not supported",
    ast.BitAnd: "& is not supported",
    ast.LShift: "<< is not supported",
    ast.RShift: ">> is not supported",
    ast.MatMult: "@ is not supported",
    ast.Invert: "~ is not supported",
    ast.Not: "not is not supported",
}
#: constructs refused by kind, with the words the message uses
_REFUSED_NODES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access (write sqrt(x), not math.sqrt(x))",
    ast.Lambda: "a lambda",
    ast.Subscript: "indexing",
    ast.Compare: "a comparison",
    ast.BoolOp: "and/or",
    ast.IfExp: "a conditional expression",
    ast.NamedExpr: "an assignment",
    ast.JoinedStr: "an f-string",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Starred: "unpacking (*)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def _round(x: int | float, ndigits: int | None = None) -> int | float:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > _MAX_ROUND_DIGITS):
        raise ValueError(f"ndigits must be an integer between -{_MAX_ROUND_DIGITS} and {_MAX_ROUND_DIGITS}")
    return round(x, ndigits)


def _min(*args: int | float) -> int | float:
    if not args:
        raise TypeError("expected at least one argument")
    return min(args)


def _max(*args: int | float) -> int | float:
    if not args:
        raise TypeError("expected at least one argument")
    return max(args)


#: the functions an expression may call
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "exp": math.exp,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "min": _min,
    "max": _max,
}
#: the constants an expression may name
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def evaluate(expression: str) -> int | float:
    """The value of the arithmetic ``expression``.

    Args:
        expression: e.g. ``"25 * 47"``, ``"sqrt(2) / 2"``, ``"(1 + 2) ** 10 % 7"``.

    Returns:
        An ``int`` when every step stays in the integers (``/`` makes a float, as in
        Python), else a finite ``float``.

    Raises:
        ToolError: the expression is not arithmetic (a name, an attribute, a call of
            something else, a string ...), is malformed, divides by zero, leaves a
            function's domain, is longer than :data:`MAX_LENGTH` characters, or has a
            result or step past :data:`MAX_DIGITS` digits or beyond float range.
    """
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is {len(expression)} characters long; the limit is {MAX_LENGTH}")
    if not expression.strip():
        raise ToolError("the expression is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" (column {exc.offset})" if exc.offset else ""
        raise ToolError(f"invalid expression: {exc.msg}{where}") from None
    except (RecursionError, MemoryError, ValueError) as exc:  # ValueError: a NUL byte
        raise ToolError(f"invalid expression: {exc or 'nested too deeply'}") from None
    try:
        return _Evaluator().visit(tree)
    except RecursionError:
        raise ToolError("the expression is nested too deeply") from None


def format_number(value: int | float) -> str:
    """``value`` as the calculator answers it: an ``int`` with all its digits, a float
    with 15 significant digits (``0.30000000000000004`` is ``0.3``; ``5.0`` is ``5``)."""
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"  # not "-0"
    return format(value, ".15g")


def _shown(value: int | float) -> str:
    """``value`` for a message: a long integer cut short (``123456789012...(401 digits)``)."""
    text = format_number(value)
    return text if len(text) <= 30 else f"{text[:12]}...({len(text.lstrip('-'))} digits)"


class _Evaluator(ast.NodeVisitor):
    """Evaluates the whitelisted nodes; :meth:`generic_visit` refuses every other kind."""

    def visit_Expression(self, node: ast.Expression) -> int | float:
        return self.visit(node.body)

    def visit_Constant(self, node: ast.Constant) -> int | float:
        if type(node.value) in (int, float):
            return _checked(node.value)
        raise ToolError(f"{node.value!r} is not a number; only numbers are allowed")

    def visit_Name(self, node: ast.Name) -> float:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            raise ToolError(f"{node.id} is a function: call it, as in {node.id}(x)")
        raise ToolError(
            f"unknown name {node.id!r}; the constants are {', '.join(CONSTANTS)} "
            f"and the functions {', '.join(FUNCTIONS)}"
        )

    def visit_UnaryOp(self, node: ast.UnaryOp) -> int | float:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ToolError(f"operator {_REFUSED_OPERATORS[type(node.op)]}")
        return _checked(op(self.visit(node.operand)))

    def visit_BinOp(self, node: ast.BinOp) -> int | float:
        # A long sum ``1 + 2 + ... + 900`` nests to the left as deep as it is long: walk
        # the left spine in a loop, so only parentheses (at most 200) nest the recursion.
        spine = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp):
            spine.append(left)
            left = left.left
        value = self.visit(left)
        for step in reversed(spine):
            value = _apply(step.op, value, self.visit(step.right))
        return value

    def visit_Call(self, node: ast.Call) -> int | float:
        if isinstance(node.func, ast.Attribute):
            self.generic_visit(node.func)  # refused, saying what to write instead
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = ast.unparse(node.func)
            raise ToolError(f"unknown function {what!r}; the functions are {', '.join(FUNCTIONS)}")
        name = node.func.id
        if node.keywords:
            raise ToolError(f"{name}() takes positional arguments only")
        args = [self.visit(arg) for arg in node.args]
        try:
            result = FUNCTIONS[name](*args)
        except (ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            raise ToolError(f"{name}({', '.join(map(_shown, args))}): {exc}") from None
        return _checked(result)

    def generic_visit(self, node: ast.AST) -> Any:
        what = _REFUSED_NODES.get(type(node), type(node).__name__)
        raise ToolError(f"{what} is not allowed in an arithmetic expression")


def _apply(op_node: ast.operator, left: int | float, right: int | float) -> int | float:
    """``left <op> right``, refusing what the calculator cannot answer."""
    entry = _BINARY.get(type(op_node))
    if entry is None:
        raise ToolError(f"operator {_REFUSED_OPERATORS[type(op_node)]}")
    op, symbol = entry
    if op is operator.pow:
        _check_power(left, right)
    try:
        result = op(left, right)
    except ZeroDivisionError:
        raise ToolError(f"division by zero in {_shown(left)} {symbol} {_shown(right)}") from None
    except OverflowError:
        raise ToolError(f"the result of {symbol} is too large for a float") from None
    return _checked(result)


def _check_power(base: int | float, exponent: int | float) -> None:
    """Refuse an integer power whose result would pass :data:`MAX_DIGITS` digits, before
    computing it (``9 ** 9 ** 9`` would take the machine's memory)."""
    if not (isinstance(base, int) and isinstance(exponent, int) and exponent > 0):
        return
    if (abs(base).bit_length() - 1) * exponent > _MAX_BITS:  # log2 |base| * exponent, rounded down
        raise ToolError(f"the result of {_shown(base)} ** {_shown(exponent)} would have more than {MAX_DIGITS} digits")


def _checked(value: Any) -> int | float:
    """``value`` if it is a number the calculator can answer with."""
    if isinstance(value, int):
        if value.bit_length() > _MAX_BITS:
            raise ToolError(f"the result has more than {MAX_DIGITS} digits")
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ToolError("the result is not a number (nan)")
        if math.isinf(value):
            raise ToolError("the result is too large for a float")
        return value
    raise ToolError("the result is not a real number")


class CalculatorOptions(ToolOptions):
    """The ``calculator`` tool takes only the common options (``timeout_s``)."""


class CalculatorInput(ToolInput):
    expression: str = Field(description="An arithmetic expression, e.g. '25 * 47' or 'sqrt(2) / 2'.")


class CalculatorTool(TypedTool):
    """The ``calculator`` tool: ``{"expression": str}`` -> the value, as text."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            "calculator",
            "Evaluate an arithmetic expression exactly and return its value. Supports numbers, "
            "+ - * / // % ** (power), parentheses, the functions "
            f"{', '.join(FUNCTIONS)} (as f(x); log(x, base) too) and the constants {', '.join(CONSTANTS)}. "
            "Integers stay exact.",
            CalculatorInput,
            timeout_s,
        )

    async def run(self, arguments: CalculatorInput) -> str:
        return format_number(evaluate(arguments.expression))


class CalculatorKit(ToolKit):
    """Provides the ``calculator`` tool."""

    options: CalculatorOptions

    async def tools(self) -> list[Tool]:
        return [CalculatorTool(self.options.timeout_s)]
