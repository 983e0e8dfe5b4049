"""namu.ir.metadata: an artifact's metadata is parsed in one place, once per stored text."""

from __future__ import annotations

import onnx_ir as ir
import pytest

from namu.errors import ArtifactError
from namu.ir import metadata
from namu.ir.metadata import (
    ArtifactMetadata,
    Passport,
    Signature,
    TaskEntry,
    TaskTable,
    dump,
)


def _model() -> ir.Model:
    model = ir.Model(ir.Graph([], [], nodes=[], name="wf"), ir_version=10)
    props = model.metadata_props
    props[metadata.SIGNATURE_KEY] = dump(Signature(name="wf", file="wf.py", params=[]))
    props[metadata.PASSPORT_KEY] = dump(
        Passport(namu_version="0.1.0", workflow="wf", workflow_digest="", passes=[], onnx_opset=21)
    )
    props[metadata.TASKS_KEY] = dump(TaskTable(tasks=[TaskEntry(key="t", module="m", qualname="t", file="", digest="")]))
    return model


def test_metadata_is_parsed_once_per_stored_text() -> None:
    model = _model()
    meta = ArtifactMetadata.of(model)
    assert (meta.signature.name, meta.passport.workflow, [t.key for t in meta.task_table.tasks]) == ("wf", "wf", ["t"])
    again = ArtifactMetadata.of(model)
    assert all(a is b for a, b in zip(again, meta))  # kept, not parsed again
    assert TaskTable.of(model) is meta.task_table

    model.metadata_props[metadata.TASKS_KEY] = dump(TaskTable(tasks=[]))  # a pass rewrote it
    assert TaskTable.of(model).tasks == []
    assert ArtifactMetadata.of(model).signature is meta.signature


def test_missing_or_damaged_metadata_is_an_artifact_error() -> None:
    model = ir.Model(ir.Graph([], [], nodes=[]), ir_version=10)
    assert TaskTable.of(model) == TaskTable(tasks=[]) and Passport.stored_in(model) is None
    with pytest.raises(ArtifactError, match=r"^damaged namu metadata: namu.signature is missing$"):
        ArtifactMetadata.of(model)

    model = _model()
    model.metadata_props[metadata.TASKS_KEY] = '{"tasks": [{"key": 3}]}'
    with pytest.raises(ArtifactError, match=r"^damaged namu metadata: namu.tasks: tasks.0.key: Input should be a valid string$"):
        TaskTable.of(model)
    with pytest.raises(ArtifactError, match="namu.tasks"):
        ArtifactMetadata.of(model)
