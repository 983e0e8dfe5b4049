"""Lower the calls of a workflow body: tasks, role slots, builtins, methods that change
nothing, sub-workflows and agents.

A task call is a ``namu.Task`` node and a slot call a ``namu.Slot`` node (bound to a task
by ``resolve-slots``). A sub-workflow is lowered once into a FunctionProto of the
``namu.workflow`` domain and called by name; the sub-workflows a body calls are found by
a static scan and lowered before it, callees first, without recursion.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from collections.abc import Iterator, Sequence
from types import CodeType
from typing import TYPE_CHECKING, Any

import onnx_ir as ir

from namu.frontend.agents.agent import Agent
from namu.frontend.builder import Scope, kwnames_attrs
from namu.frontend.liveness import target_names
from namu.frontend.reads import MISSING
from namu.frontend.rejections import REJECTED_FORMS
from namu.frontend.slot import Slot
from namu.frontend.statements import Returned
from namu.frontend.task import Task
from namu.frontend.workflow import Workflow
from namu.ir.metadata import INLINE_KEY, Signature
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.types import ValueType, type_of
from namu.ops.builtins import BUILTINS, INSTANCE_TYPES, METHODS, MUTATING, method_type

if TYPE_CHECKING:
    from namu.frontend.context import CompileContext

__all__ = ["CallLowering", "add_function", "code_names", "lower_callees"]


class CallLowering:
    """Call lowering of the Python frontend (mixed into ``namu.frontend.lower._Lowering``,
    with the statement, expression and name mixins and :class:`~namu.frontend.builder.IRBuilder`)."""

    def _callee(self, func: ast.expr, scope: Scope) -> Any:
        found = self._global_path(func)
        if found is not None and found[0].id not in scope.env:
            base, path = found
            if base.id in self.local_names:
                self._fail_unbound_local(base, base.id)
            obj = self._resolve(base.id)
            if obj is MISSING:
                self.src.fail(base, f"name `{base.id}` is not defined")
            if not path:
                return obj
            obj = self._follow(obj, path)
            if obj is MISSING:
                self.src.fail(func, f"`{ast.unparse(func)}` does not exist")
            if isinstance(obj, (Task, Workflow, Slot, Agent)) or _is_agent_run(obj):
                return obj
        elif isinstance(func, ast.Name):
            self.src.fail(func, f"`{func.id}` is a workflow value, not a task; only tasks and workflows can be called")
        self.src.fail(func, f"cannot call `{ast.unparse(func)}` in a workflow: only @namu.task and @namu.workflow functions can be called")

    def _call(self, node: ast.Call, scope: Scope) -> ir.Value:
        unpacks = any(isinstance(arg, ast.Starred) for arg in node.args) or any(kw.arg is None for kw in node.keywords)
        if unpacks:
            callee = self._callee(node.func, scope)
            if isinstance(callee, Task):
                return self._unpacked_task_call(node, callee, scope)
            spliced = _spliced(node) if isinstance(callee, Workflow) else None
            if spliced is not None:  # literal spreads into a sub-workflow's parameters
                return self._workflow_call(spliced, callee, scope)
            bad = next((a for a in node.args if isinstance(a, ast.Starred)), None)
            if bad is not None:
                self.src.fail(bad, REJECTED_FORMS["f(*args)"])
            self.src.fail(next(kw.value for kw in node.keywords if kw.arg is None), REJECTED_FORMS["f(**kwargs)"])
        if isinstance(node.func, ast.Attribute) and self._is_value(node.func.value, scope):
            return self._method_call(node, node.func, scope)
        callee = self._callee(node.func, scope)
        if callee is len and not isinstance(callee, (Task, Workflow)):
            if len(node.args) != 1 or node.keywords:
                self.src.fail(node, "len() takes exactly one argument")
            value = self._expr(node.args[0], scope)
            if type_of(value).kind == "list" and type_of(value).is_onnx:
                return self.emit1(scope, "SequenceLength", [value], ValueType.int(), node, names=["length"])
            return self.emit1(scope, "Len", [value], ValueType.int(), node, domain=NAMU_DOMAIN, names=["length"])
        if callee is isinstance:
            return self._isinstance_call(node, scope)
        name = getattr(callee, "__name__", None)
        if name in BUILTINS and getattr(builtins, name, None) is callee:
            args, kwnames = self._call_inputs(node, scope, generators=True)
            return self._builtin(scope, name, args, node, kwnames)
        if isinstance(callee, Task):
            return self._task_call(node, callee, scope)
        if isinstance(callee, Slot):
            return self._slot_call(node, callee, scope)
        if isinstance(callee, Workflow):
            return self._workflow_call(node, callee, scope)
        if isinstance(callee, Agent):
            return self._agent_call(node, callee, scope, answer=True)
        if _is_agent_run(callee):
            return self._agent_call(node, callee.__self__, scope, answer=False)
        name = ast.unparse(node.func)
        self.src.fail(node, f"cannot call `{name}` in a workflow: it is not a @namu.task or @namu.workflow (wrap it in a task)")

    def _is_builtin(self, name: str) -> bool:
        """Whether ``name``, read in this body, is Python's builtin of that name."""
        return name not in self.local_names and self._resolve(name) is getattr(builtins, name, MISSING)

    def _is_value(self, node: ast.expr, scope: Scope) -> bool:
        """Whether ``node`` is a value a method may be called on (not a module, a task or
        another global): a name bound in the body, any expression but a dotted global
        name, or a global (or an attribute of one) that is a literal constant (``SEP`` of
        ``SEP.join(xs)``, ``Config.NAME``), which lowers as a constant."""
        found = self._global_path(node)
        return found is None or found[0].id in scope.env or self._global_constant(node, scope.env) is not MISSING

    def _method_call(self, node: ast.Call, func: ast.Attribute, scope: Scope) -> ir.Value:
        """``x.name(...)`` on a workflow value: ``namu.CallMethod`` for a method that
        changes nothing (:data:`namu.ops.builtins.METHODS`); a mutating one is refused
        (the value may be shared: another name or a task may hold it)."""
        name = func.attr
        if name in MUTATING:
            target = ast.unparse(func.value)
            self.src.fail(node, f"`{ast.unparse(func)}()` changes `{target}` in place, which a workflow can do only as a "
                                "statement or the whole right side of an assignment (`v = xs.pop()`), on a list, set or dict "
                                "the body made and never handed elsewhere (not a parameter, not passed to a task, not bound to "
                                f"another name); build a new value instead, e.g. `{target} = {target} + [item]`, or do it inside a task")
        if name not in METHODS:
            self.src.fail(node, f"cannot call `{ast.unparse(func)}` in a workflow: only methods that change nothing "
                                "(methods of str, bytes, list, tuple, dict, set, int and float such as split, strip, join, get, items) "
                                "can be called on a workflow value; call it inside a task")
        receiver = self._expr(func.value, scope)
        args, kwnames = self._call_inputs(node, scope, generators=True)
        attrs = [ir.AttrString("name", name), *kwnames_attrs(kwnames)]
        rtype = method_type(name, type_of(receiver))
        return self.emit1(scope, "CallMethod", [receiver, *args], rtype, node, domain=NAMU_DOMAIN, attrs=attrs, names=[name])

    def _isinstance_call(self, node: ast.Call, scope: Scope) -> ir.Value:
        """``isinstance(x, T)`` or ``isinstance(x, (T, U))`` for builtin classes."""
        if len(node.args) != 2 or node.keywords:
            self.src.fail(node, "isinstance() takes exactly two arguments")
        spec = node.args[1]
        names = spec.elts if isinstance(spec, ast.Tuple) else [spec]
        types: list[str] = []
        for name in names:
            cls = self._resolve(name.id) if isinstance(name, ast.Name) and name.id not in scope.env else None
            if not (isinstance(cls, type) and INSTANCE_TYPES.get(cls.__name__) is cls):
                known = ", ".join(INSTANCE_TYPES)
                self.src.fail(name, f"isinstance() in a workflow tests builtin classes only ({known}); test other classes inside a task")
            types.append(cls.__name__)
        value = self._expr(node.args[0], scope)
        attrs = [ir.AttrStrings("types", types)]
        return self.emit1(scope, "IsInstance", [value], ValueType.bool(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["isinstance"])

    def _bind_check(self, node: ast.Call, sig: inspect.Signature, name: str,
                    n_positional: int | None = None, kwnames: Sequence[str] | None = None) -> None:
        """Fail at ``node`` unless ``sig`` binds the call's arguments (by default, as
        written: ``node.args`` and its named keywords)."""
        if n_positional is None:
            n_positional = len(node.args)
        if kwnames is None:
            kwnames = [kw.arg for kw in node.keywords if kw.arg]
        try:
            sig.bind(*[object()] * n_positional, **{k: object() for k in kwnames})
        except TypeError as exc:
            self.src.fail(node, f"{name}(): {exc}")

    def _task_call(self, node: ast.Call, task: Task, scope: Scope) -> ir.Value:
        self._bind_check(node, task.signature, task.name)
        args, kwnames = self._call_inputs(node, scope)
        return self.call_task(scope, task, args, node, kwnames)

    def _unpacked_task_call(self, node: ast.Call, task: Task, scope: Scope) -> ir.Value:
        """``f(*t, **d)`` for a task: each ``*`` operand of a static length (a tuple or
        list literal, a tuple of known items) and each ``**`` operand of static keys (a
        dict literal, or a dict the body built from one) spread into the call's
        arguments; the binding is checked at compile time as for any task call."""
        args: list[ir.Value] = []
        for arg in node.args:
            if not isinstance(arg, ast.Starred):
                args.append(self._expr(arg, scope))
                continue
            if isinstance(arg.value, (ast.Tuple, ast.List)):
                args += [self._expr(e, scope) for e in arg.value.elts]
                continue
            value = self._expr(arg.value, scope)
            items = type_of(value).items
            if items is None:
                self.src.fail(arg, f"{REJECTED_FORMS['f(*args)']}; `{ast.unparse(arg.value)}` is {type_of(value)}")
            args += [self._item_at(scope, value, i, items[i], arg) for i in range(len(items))]
        kwnames: list[str] = []
        for kw in node.keywords:
            if kw.arg is not None:
                kwnames.append(kw.arg)
                args.append(self._expr(kw.value, scope))
                continue
            value = self._expr(kw.value, scope)
            producer = value.producer()
            if producer is None or producer.op_type != "Dict" or producer.domain != NAMU_DOMAIN:
                self.src.fail(kw.value, REJECTED_FORMS["f(**kwargs)"])
            for key, item in zip(producer.attributes["keys"].as_strings(), producer.inputs):
                if key in kwnames:
                    self.src.fail(kw.value, f"{task.name}() got multiple values for keyword argument '{key}'")
                kwnames.append(key)
                args.append(item)  # type: ignore[arg-type]
        self._bind_check(node, task.signature, task.name, len(args) - len(kwnames), kwnames)
        return self.call_task(scope, task, args, node, kwnames)

    def _item_at(self, scope: Scope, value: ir.Value, index: int, vtype: ValueType, at: ast.AST) -> ir.Value:
        """``value[index]`` of a tuple, typed ``vtype``."""
        key = self.constant(scope, index, at)
        return self.emit1(scope, "GetItem", [value, key], vtype, at, domain=NAMU_DOMAIN, names=["item"])

    def _slot_call(self, node: ast.Call, slot: Slot, scope: Scope) -> ir.Value:
        """``llm(prompt)``: ``namu.Slot <slot="llm">``, bound to a task by ``resolve-slots``."""
        args, kwnames = self._call_inputs(node, scope)
        return self.call_slot(scope, slot, args, node, kwnames)

    def _call_inputs(self, node: ast.Call, scope: Scope, *, generators: bool = False) -> tuple[list[ir.Value], list[str]]:
        """A call's inputs (positional, then keyword values) and its keywords; with
        ``generators``, a generator expression argument is lowered as a list
        comprehension (the call is a builtin's or a method's)."""
        lower = self._generator_argument if generators else self._expr
        args = [lower(a, scope) for a in node.args]
        kwnames = [kw.arg for kw in node.keywords]
        args += [self._expr(kw.value, scope) for kw in node.keywords]
        return args, kwnames  # type: ignore[return-value]

    def _workflow_call(self, node: ast.Call, wf: Workflow, scope: Scope) -> ir.Value:
        self._bind_check(node, wf.signature, wf.name)
        fname, sig = self._function(wf, node)
        bound = wf.signature.bind_partial(*node.args, **{kw.arg: kw.value for kw in node.keywords if kw.arg})
        inputs: list[ir.Value] = []
        for param in sig.params:
            given = bound.arguments.get(param.name)
            if param.kind == "var_positional":  # the extra positional arguments, as a tuple
                inputs.append(self._expr(ast.copy_location(ast.Tuple(elts=list(given or ()), ctx=ast.Load()), node), scope))
            elif param.kind == "var_keyword":  # the extra keyword arguments, as a dict
                items = dict(given or {})
                keys: list[ast.expr | None] = [ast.copy_location(ast.Constant(value=k), node) for k in items]
                inputs.append(self._expr(ast.copy_location(ast.Dict(keys=keys, values=list(items.values())), node), scope))
            elif param.name in bound.arguments:
                inputs.append(self._expr(given, scope))
            else:
                inputs.append(self.constant(scope, param.default, node, param.name))
        function = self.ctx.functions.get(fname)
        if function is None:
            # A call closing a cycle (the callee is being lowered): by name, as ONNX forbids
            # recursive function references; the callee returns one packed value.
            attrs = [ir.AttrString("function", fname)]
            return self.emit1(scope, "CallFunction", inputs, ValueType.opaque(), node, domain=NAMU_DOMAIN, attrs=attrs, names=[fname])
        if wf.inline and id(wf) not in self.ctx.recursive and scope.depth + self.ctx.function_nesting[fname] > self.nesting:
            inlined = f" (counting the sub-workflow bodies the call of `{wf.name}` inlines)"
            self.nest(scope.depth + self.ctx.function_nesting[fname], node, inlined)
        out_types = [type_of(v) for v in function.outputs]
        hints = sig.return_keys if sig.returns == "dict" else [fname] * len(out_types)
        outs = self.emit(scope, fname, inputs, out_types, node, domain=WORKFLOW_DOMAIN, names=hints)
        ret = Returned(sig.returns, outs, keys=list(sig.return_keys), node=node)
        return self._pack(scope, ret)

    def _agent_call(self, node: ast.Call, agent: Agent, scope: Scope, *, answer: bool) -> ir.Value:
        """``support(q)`` (its answer, a str) or ``support.run(q)`` (its ``AgentResult``):
        a call of the agent's function, lowered once per compile by the agent frontend
        (which also brings the default bindings of the agent's LLM and tool slots)."""
        fname = self.ctx.function_of.get(id(agent))
        if fname is None:
            from namu.frontend.agents.config import slot_prefix
            from namu.frontend.agents.lower import lower_agent

            graph, sig = lower_agent(agent.source, self.ctx)
            fname = graph.name = self.ctx.fresh(slot_prefix(agent.name))
            function = ir.Function(WORKFLOW_DOMAIN, fname, graph=graph, attributes=[])
            function.metadata_props[INLINE_KEY] = "false"  # an agent stays one function call
            self.ctx.functions[fname] = function
            self.ctx.function_signatures[fname] = sig
            self.ctx.function_nesting[fname] = 0
            self.ctx.function_of[id(agent)] = fname
        sig = self.ctx.function_signatures[fname]
        python = sig.python()
        self._bind_check(node, python, agent.name)
        bound = python.bind_partial(*node.args, **{kw.arg: kw.value for kw in node.keywords if kw.arg})
        inputs = [
            self._expr(bound.arguments[p.name], scope) if p.name in bound.arguments else self.constant(scope, p.default, node, p.name)
            for p in sig.params
        ]
        result = self.emit1(scope, fname, inputs, ValueType.opaque(), node, domain=WORKFLOW_DOMAIN, names=[f"{fname}_result"])
        if not answer:
            return result
        attrs = [ir.AttrString("name", "answer")]
        return self.emit1(scope, "GetAttr", [result], ValueType.str(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["answer"])

    def _function(self, wf: Workflow, at: ast.AST) -> tuple[str, Signature]:
        """The FunctionProto of the ``namu.workflow`` domain of a sub-workflow, lowered once.

        Sub-workflows are lowered before their callers (:func:`lower_callees`), so this
        lowers only a callee that the static scan could not see.
        """
        ctx = self.ctx
        existing = ctx.function_of.get(id(wf))
        if existing is not None:
            return existing, ctx.function_signatures[existing]
        if wf in ctx.in_progress:
            return _recursive_call(self, wf)
        lowering = type(self)(wf, ctx)
        ctx.in_progress.append(wf)
        try:
            lower_callees(lowering)
            return add_function(lowering)
        finally:
            ctx.in_progress.pop()

    def workflow_calls(self) -> Iterator[tuple[ast.Call, Workflow]]:
        """The calls of sub-workflows in the body, in source order, found by resolving each
        callee's name statically (a name the body or a comprehension binds is skipped;
        lowering resolves those calls itself)."""
        if not any(_may_lead_to_workflow(self._lookup(name, None)) for name in code_names(self.wf.fn.__code__)):
            return  # no name of the body can be a workflow: skip the walk over the tree
        bound = set(self.local_names)
        calls: list[ast.Call] = []
        for stmt in self.src.tree.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    calls.append(node)
                elif isinstance(node, ast.comprehension):
                    bound |= target_names(node.target)
        calls.sort(key=lambda c: (c.lineno, c.col_offset))
        for call in calls:
            found = self._global_path(call.func)
            if found is None or found[0].id in bound:
                continue
            base = self._resolve(found[0].id)
            callee = MISSING if base is MISSING else self._follow(base, found[1])
            if isinstance(callee, Workflow):
                yield call, callee


def _spliced(node: ast.Call) -> ast.Call | None:
    """``node`` with its ``*`` operands that are tuple or list literals and its ``**``
    operands that are dict literals with string keys spread into plain arguments, or None
    when another operand is spread."""
    args: list[ast.expr] = []
    for arg in node.args:
        if not isinstance(arg, ast.Starred):
            args.append(arg)
        elif isinstance(arg.value, (ast.Tuple, ast.List)) and not any(isinstance(e, ast.Starred) for e in arg.value.elts):
            args += arg.value.elts
        else:
            return None
    keywords: list[ast.keyword] = []
    for kw in node.keywords:
        if kw.arg is not None:
            keywords.append(kw)
        elif isinstance(kw.value, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in kw.value.keys):
            keywords += [ast.copy_location(ast.keyword(arg=k.value, value=v), v) for k, v in zip(kw.value.keys, kw.value.values)]  # type: ignore[union-attr]
        else:
            return None
    return ast.copy_location(ast.Call(func=node.func, args=args, keywords=keywords), node)


def _is_agent_run(obj: Any) -> bool:
    """``obj`` is an agent's bound ``run`` method (``support.run(q)`` in a workflow)."""
    return inspect.ismethod(obj) and isinstance(obj.__self__, Agent) and obj.__name__ == "run"


def code_names(code: CodeType) -> Iterator[str]:
    """The global and free names ``code`` and its nested code objects (comprehensions)
    mention -- a superset of the names the body resolves (attribute names are in it too)."""
    pending = [code]
    while pending:
        current = pending.pop()
        yield from current.co_names
        yield from current.co_freevars
        pending.extend(c for c in current.co_consts if isinstance(c, CodeType))


def _may_lead_to_workflow(value: Any) -> bool:
    """``value`` is a workflow, or an object whose attributes may hold one (a module, a
    class, a namespace) -- not a task, a slot, a literal or a builtin."""
    if isinstance(value, Workflow):
        return True
    return value is not MISSING and hasattr(value, "__dict__") and not isinstance(value, (Task, Slot))


def _recursive_call(caller: CallLowering, wf: Workflow) -> tuple[str, Signature]:
    """A call of ``wf`` while ``wf`` is being lowered (it is on ``ctx.in_progress``): a
    cycle of calls. Every workflow on the cycle becomes a function kept at run time (never
    inlined) that returns one value (a tuple or dict result packed), so a call knows its
    callee's outputs before the callee's body is lowered; the callee's function name is
    reserved here. The kernel runs the calls as frames, limited by the run's
    ``recursion_limit`` (as Python by its recursion limit)."""
    ctx = caller.ctx
    _mark_cycle(ctx, wf)
    name = ctx.recursive[id(wf)]
    signature = ctx.function_signatures.get(name)
    if signature is None:  # once per function: add_function replaces it with the same shape
        callee = type(caller)(wf, ctx)
        params = callee._parameters(callee.src.tree, Scope({}))[1]
        signature = ctx.function_signatures[name] = Signature(
            name=wf.name, file=callee.src.filename, params=params, returns="value", return_keys=[]
        )
    return name, signature


def _mark_cycle(ctx: CompileContext, wf: Workflow) -> None:
    """Reserve a function name for each workflow on the cycle that a call of ``wf``
    (being lowered) closes: they are the recursive ones."""
    for member in ctx.in_progress[ctx.in_progress.index(wf):]:
        ctx.recursive.setdefault(id(member), ctx.fresh(member.name))


def lower_callees(caller: CallLowering) -> None:
    """Lower the sub-workflows ``caller`` calls, and theirs, each before its callers.

    A depth-first walk of the call graph with an explicit stack, so that a chain of
    sub-workflows of any depth lowers without recursion (the caller's lowering then finds
    each callee's function and signature ready). ``ctx.in_progress`` is the path of the
    walk: a call of a workflow on it is recursion, rejected where the cycle closes.
    """
    ctx = caller.ctx
    depth = len(ctx.in_progress)
    pending = [(caller, caller.workflow_calls())]
    try:
        while pending:
            lowering, calls = pending[-1]
            for _at, callee in calls:
                if callee in ctx.in_progress:
                    _mark_cycle(ctx, callee)  # lowered where the cycle started
                    continue
                if id(callee) not in ctx.function_of:
                    inner = type(caller)(callee, ctx)
                    ctx.in_progress.append(callee)
                    pending.append((inner, inner.workflow_calls()))
                    break
            else:
                pending.pop()
                if pending:  # a callee: all of its own callees are lowered
                    add_function(lowering)
                    ctx.in_progress.pop()
    finally:
        del ctx.in_progress[depth:]


def add_function(lowering: CallLowering) -> tuple[str, Signature]:
    """Lower a sub-workflow's body into a function of the model; its name and signature."""
    ctx, wf = lowering.ctx, lowering.wf
    lowering.as_function = True
    graph, sig = lowering.lower_graph()
    name = ctx.recursive.get(id(wf)) or ctx.fresh(wf.name)
    graph.name = name
    function = ir.Function(WORKFLOW_DOMAIN, name, graph=graph, attributes=[])
    if not wf.inline or id(wf) in ctx.recursive:
        function.metadata_props[INLINE_KEY] = "false"  # inline-functions keeps its calls
    ctx.functions[name] = function
    ctx.function_signatures[name] = sig
    ctx.function_nesting[name] = lowering.nesting
    ctx.function_of[id(wf)] = name
    return name, sig
