"""The state of one compile's lowering: SSA names, the task table, the lowered functions.

Every frontend lowers a source with one :class:`CompileContext` and finishes with
:meth:`CompileContext.lowered`, which wraps the main graph into the model the passes take.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import onnx_ir as ir

from namu._version import __version__
from namu.frontend.reads import NameReads
from namu.frontend.registry import Lowered
from namu.ir import metadata
from namu.ir.metadata import Signature
from namu.ir.opsets import ONNX_OPSET, opset_imports
from namu.ir.task_keys import TaskKeys

if TYPE_CHECKING:
    from namu.frontend.workflow import Workflow

__all__ = ["IR_VERSION", "CompileContext"]

#: ONNX IR version of the artifacts namu writes (opset 21 needs IR version 10).
IR_VERSION = 10


class CompileContext(TaskKeys):
    """State shared by the lowering of one workflow and all its sub-workflows.

    Holds the model-wide SSA name allocator, the task table (``task_key`` and
    ``task_table``, from :class:`~namu.ir.task_keys.TaskKeys`), the lowered functions,
    and the names the lowering resolved in the workflows' namespaces (``reads``: what a
    cached compile must re-check before it is reused).

    Attributes:
        tasks: the tasks called, by task key (:meth:`task_key`).
        functions: the sub-workflow functions lowered, by name.
        function_signatures: each function's signature, by name (a recursive one's from its
            first recursive call, before its body is lowered).
        function_nesting: how deep each function's graphs nest once inlined, by name.
        function_of: ``id(workflow)`` -> the name of the function it was lowered to.
        in_progress: the workflows being lowered, outermost first (a call of one of
            them is recursion).
        recursive: ``id(workflow)`` -> the function name reserved for a workflow on a
            cycle of calls (lowered as a kept function returning one packed value).
        reads: the names resolved, for :meth:`NameReads.current`.
        slots: the role-slot bindings the sources lowered bring (an agent's LLM and tools).
    """

    def __init__(self) -> None:
        super().__init__()
        self._names: set[str] = set()
        self._next_suffix: dict[str, int] = {}
        self.functions: dict[str, ir.Function] = {}
        self.function_signatures: dict[str, Signature] = {}
        self.function_nesting: dict[str, int] = {}
        self.function_of: dict[int, str] = {}
        self.in_progress: list[Workflow] = []
        self.recursive: dict[int, str] = {}
        self.reads = NameReads()
        self.slots: dict[str, Any] = {}

    def fresh(self, hint: str) -> str:
        """A model-wide unique SSA name based on ``hint`` (amortized O(1))."""
        hint = hint or "v"
        if hint not in self._names:
            self._names.add(hint)
            return hint
        i = self._next_suffix.get(hint, 1)
        while f"{hint}_{i}" in self._names:
            i += 1
        name = f"{hint}_{i}"
        self._next_suffix[hint] = i + 1
        self._names.add(name)
        return name

    def restart_names(self, taken: Iterable[str]) -> None:
        """Forget every name :meth:`fresh` gave, except ``taken`` (to name a model again)."""
        self._names = set(taken)
        self._next_suffix = {}

    def lowered(self, graph: ir.Graph, signature: Signature, digest: str) -> Lowered:
        """The model of this compile, around its main graph: the functions lowered, and in
        its metadata the task table, the signature and a provisional passport (the
        workflow's name and ``digest``, no passes yet; ``verify-runtime-complete``
        completes it).

        Args:
            graph: the main graph (its opset imports set).
            signature: the workflow's signature.
            digest: ``sha256:`` digest of the source lowered.
        """
        model = ir.Model(
            graph,
            ir_version=IR_VERSION,
            producer_name="namu",
            producer_version=__version__,
            functions=list(self.functions.values()),
        )
        for function in model.functions.values():
            function.opset_imports.update(opset_imports())
        model.metadata_props[metadata.TASKS_KEY] = metadata.dump(metadata.TaskTable(tasks=self.task_table()))
        model.metadata_props[metadata.SIGNATURE_KEY] = metadata.dump(signature)
        model.metadata_props[metadata.PASSPORT_KEY] = metadata.dump(
            metadata.Passport(
                namu_version=__version__, workflow=signature.name, workflow_digest=digest, passes=[], onnx_opset=ONNX_OPSET
            )
        )
        return Lowered(model=model, tasks=self.tasks, signature=signature, digest=digest, reads=self.reads, slots=self.slots)
