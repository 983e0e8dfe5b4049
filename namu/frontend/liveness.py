"""Backward liveness over a workflow's statements (the classic dataflow equations).

The lowering uses it to decide which variables become phi values of an ``If``, which are
carried by a ``Loop``, and whether a ``for`` body carries anything from one iteration to
the next (then it is a sequential loop) or not (then it fans out).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar

__all__ = ["PHI_READS", "COMPREHENSION", "SCAN_WALRUS", "conditional_walruses", "assigned_names", "header_expressions", "expr_loads", "first_assignments", "live_before", "target_names", "walrus_targets"]


def target_names(target: ast.expr) -> set[str]:
    """Names bound by an assignment target (``a``, ``a, (b, c)``)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        out: set[str] = set()
        for elt in target.elts:
            out |= target_names(elt)
        return out
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    return set()


def expr_loads(node: ast.AST | None) -> set[str]:
    """Names an expression reads; comprehension variables are local to their comprehension."""
    if node is None:
        return set()
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) else set()
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        return _comprehension_loads(node)
    out: set[str] = set()
    for child in ast.iter_child_nodes(node):
        out |= expr_loads(child)
    return out


def _comprehension_loads(node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> set[str]:
    bound: set[str] = set()
    out: set[str] = set()
    for gen in node.generators:
        out |= expr_loads(gen.iter) - bound
        bound |= target_names(gen.target)
        for cond in gen.ifs:
            out |= expr_loads(cond) - bound
    parts: list[ast.AST] = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    for part in parts:
        out |= expr_loads(part) - bound
    return out


def assigned_names(stmts: Iterable[ast.stmt]) -> set[str]:
    """Every name any statement in ``stmts`` (including nested blocks) may assign."""
    out: set[str] = set()
    for target in _assignment_targets(stmts):
        out |= target_names(target)
    return out


def first_assignments(stmts: Iterable[ast.stmt]) -> dict[str, ast.expr]:
    """Each name ``stmts`` (including nested blocks) may assign -- the names Python makes
    local to the whole function -- and the first target in source order that assigns it."""
    out: dict[str, ast.expr] = {}
    for target in _assignment_targets(stmts):
        for name in target_names(target):
            out.setdefault(name, target)
    return out


#: whether the source being lowered may hold assignment expressions (``:=``): the lowering
#: sets it from the source text, so a body without one (nearly all) is not searched for them
SCAN_WALRUS: ContextVar[bool] = ContextVar("namu_scan_walrus", default=True)


#: whether liveness counts the reads a phi makes of a variable's value from before, on a
#: path that does not assign it: a catch region's exception path, the skip path of a
#: guard of the try rewrite (an ``if`` with ``guard`` set), an assignment expression that
#: may not run. Off, liveness asks which reads the program itself makes (where the old
#: value is Python's unbound, the lowering gives None).
PHI_READS: ContextVar[bool] = ContextVar("namu_phi_reads", default=True)


def walrus_targets(node: ast.AST | None) -> list[ast.Name]:
    """The targets of the assignment expressions (``y := ...``) of an expression, in
    source order (not those inside a comprehension, which the lowering refuses)."""
    if node is None or not SCAN_WALRUS.get():
        return []
    out: list[ast.Name] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp, ast.Lambda)):
            continue
        out += walrus_targets(child)
    if isinstance(node, ast.NamedExpr):
        out.append(node.target)  # type: ignore[arg-type]
    return out


def header_expressions(stmt: ast.stmt) -> list[ast.expr]:
    """The expressions a statement evaluates itself (not those of its nested blocks)."""
    if isinstance(stmt, (ast.If, ast.While)):
        return [stmt.test]
    if isinstance(stmt, ast.For):
        return [stmt.iter]
    value = getattr(stmt, "value", None)
    return [value] if isinstance(value, ast.expr) else []


def _assignment_targets(stmts: Iterable[ast.stmt]) -> Iterator[ast.expr]:
    """The assignment targets of ``stmts`` and of their nested blocks, in source order."""
    for stmt in stmts:
        for expression in header_expressions(stmt):
            yield from walrus_targets(expression)
        if isinstance(stmt, ast.Assign):
            yield from stmt.targets
        elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
            yield stmt.target
        elif isinstance(stmt, ast.For):
            yield stmt.target
            yield from _assignment_targets(stmt.body)
            yield from _assignment_targets(stmt.orelse)
        elif isinstance(stmt, (ast.If, ast.While)):
            yield from _assignment_targets(stmt.body)
            yield from _assignment_targets(stmt.orelse)
        elif isinstance(stmt, ast.Match):
            # imported here: namu.frontend.patterns builds on this module
            from namu.frontend.patterns import pattern_captures

            for case in stmt.cases:
                yield from pattern_captures(case.pattern)
                yield from _assignment_targets(case.body)
        elif isinstance(stmt, ast.Delete):
            yield from (t for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.Try):
            yield from _assignment_targets(stmt.body)
            for handler in stmt.handlers:
                if handler.name is not None:
                    yield ast.copy_location(ast.Name(id=handler.name, ctx=ast.Store()), handler)
                yield from _assignment_targets(handler.body)
            yield from _assignment_targets(stmt.orelse)
            yield from _assignment_targets(stmt.finalbody)


def live_before(stmts: Sequence[ast.stmt], live_after: set[str]) -> set[str]:
    """Names live on entry to ``stmts`` given the names live after them."""
    live = set(live_after)
    for stmt in reversed(stmts):
        live = _live_before_stmt(stmt, live)
    return live


def _live_before_stmt(stmt: ast.stmt, live: set[str]) -> set[str]:
    """Names live before ``stmt``; the names its own expressions bind with ``:=`` are
    not (they are assigned before anything after them reads them)."""
    if not SCAN_WALRUS.get():
        return _live_before_plain(stmt, live)
    # the names every evaluation binds (not one that may not run: its old value stays live)
    keeps = PHI_READS.get()
    walrus = {n.target.id for e in header_expressions(stmt) for n, where in conditional_walruses(e) if where is None or not keeps}  # type: ignore[attr-defined]
    if not walrus or isinstance(stmt, ast.While):
        return _live_before_plain(stmt, live)
    bound: set[str] = set()
    before = set().union(*(_loads_before_walrus(e, bound) for e in header_expressions(stmt)))
    return (_live_before_plain(stmt, live) - walrus) | before


def _loads_before_walrus(node: ast.AST, bound: set[str]) -> set[str]:
    """The names ``node`` reads before an assignment expression of it binds them, in
    evaluation order (``bound`` collects the names bound so far)."""
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) and node.id not in bound else set()
    if isinstance(node, ast.NamedExpr):
        out = _loads_before_walrus(node.value, bound)
        bound.add(node.target.id)  # type: ignore[attr-defined]
        return out
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        return _comprehension_loads(node) - bound
    out: set[str] = set()
    for child in ast.iter_child_nodes(node):
        out |= _loads_before_walrus(child, bound)
    return out


def _live_before_plain(stmt: ast.stmt, live: set[str]) -> set[str]:
    if isinstance(stmt, ast.Assign):
        killed: set[str] = set()
        for t in stmt.targets:
            killed |= target_names(t)
        return (live - killed) | expr_loads(stmt.value)
    if isinstance(stmt, ast.AugAssign):
        return live | target_names(stmt.target) | expr_loads(stmt.value)
    if isinstance(stmt, ast.AnnAssign):
        if stmt.value is None:
            return live
        return (live - target_names(stmt.target)) | expr_loads(stmt.value)
    if isinstance(stmt, ast.Return):
        return expr_loads(stmt.value)
    if isinstance(stmt, ast.Delete):
        return (live - {t.id for t in stmt.targets if isinstance(t, ast.Name)}) | expr_loads(stmt)
    if isinstance(stmt, ast.If):
        if not stmt.orelse and not PHI_READS.get() and getattr(stmt, "guard", False):
            return expr_loads(stmt.test) | live_before(stmt.body, live)  # its skip path: see PHI_READS
        return expr_loads(stmt.test) | live_before(stmt.body, live) | live_before(stmt.orelse, live)
    if isinstance(stmt, ast.While):
        header = live | expr_loads(stmt.test)
        while True:
            new = header | live_before(stmt.body, header)
            if new == header:
                return header
            header = new
    if isinstance(stmt, ast.For):
        targets = target_names(stmt.target)
        body_entry: set[str] = set()
        while True:
            new = live_before(stmt.body, body_entry | live) - targets
            if new == body_entry:
                break
            body_entry = new
        return expr_loads(stmt.iter) | body_entry | live
    if isinstance(stmt, ast.Try):
        # A catch region (namu.frontend.catch rewrites a body's try statements into them
        # before liveness runs): the body may stop anywhere, so what is live after it may
        # still hold its value from before; the flag is assigned on both paths.
        live = live - {h.name for h in stmt.handlers if h.name}
        return live_before(stmt.body, live) | (live if PHI_READS.get() else set())
    # Expr and anything else: reads only (unsupported statements are rejected later)
    return live | expr_loads(stmt)


#: where a comprehension's assignment expression binds (:func:`conditional_walruses`)
COMPREHENSION = "a comprehension"


def conditional_walruses(node: ast.AST, where: str | None = None) -> Iterator[tuple[ast.NamedExpr, str | None]]:
    """Each ``:=`` under ``node``, with what makes its evaluation conditional (None: it
    always runs when the statement does)."""
    if isinstance(node, ast.NamedExpr):
        yield node, where
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        for child in ast.walk(node):
            if isinstance(child, ast.NamedExpr):
                yield child, COMPREHENSION
        return
    for field, value in ast.iter_fields(node):
        children = value if isinstance(value, list) else [value]
        for index, child in enumerate(children):
            if not isinstance(child, ast.AST):
                continue
            inner = where
            if isinstance(node, ast.BoolOp) and index > 0:
                inner = inner or "the right side of `and`/`or`"
            elif isinstance(node, ast.IfExp) and field in ("body", "orelse"):
                inner = inner or "a branch of a conditional expression"
            elif isinstance(node, ast.Compare) and field == "comparators" and index > 0:
                inner = inner or "a later link of a chained comparison"
            yield from conditional_walruses(child, inner)
