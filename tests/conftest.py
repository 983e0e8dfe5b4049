"""Shared fixtures: every execution test runs on both executors and compares."""

from __future__ import annotations

from typing import Any

import onnx
import pytest

import namu

EXECUTORS = ("kernel", "reference")


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    """The executor under test: the native kernel, then the pure-Python reference."""
    return request.param


def run_both(wf: namu.Workflow | namu.Artifact, *args: Any, **kwargs: Any) -> namu.RunResult:
    """Run on the kernel and on the reference interpreter; assert equal results; return one.

    Also checks that the compiled artifact passes the ONNX checker with full_check, and,
    for a workflow, that the same workflow compiled at ``-O0`` (no optimization passes)
    gives the same result: the optimizer must preserve what every test workflow means.
    """
    art = wf.compile() if isinstance(wf, namu.Workflow) else wf
    onnx.checker.check_model(art.to_proto(), full_check=True)
    kernel = art.run(*args, executor="kernel", **kwargs)
    reference = art.run(*args, executor="reference", **kwargs)
    assert kernel.value == reference.value
    assert type(kernel.value) is type(reference.value)
    assert kernel.skipped == reference.skipped
    if isinstance(wf, namu.Workflow):
        unoptimized = namu.compile(wf, opt_level=0).run(*args, executor="kernel", **kwargs)
        assert unoptimized.value == kernel.value
        assert type(unoptimized.value) is type(kernel.value)
        assert unoptimized.skipped == kernel.skipped
    return kernel
