"""The agent file format: the issue's example as written, strict validation with located
errors, environment interpolation, overrides, templates, the JSON Schema, and the
lowered IR."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.errors import AgentSpecError
from namu.frontend.agents.source import load_agent, parse_agent
from namu.frontend.agents.spec import agent_json_schema
from namu.ir.printer import format_graph
from tests.cli.test_cli import assert_error, namu_cli

#: the agent of issue 11, exactly as written there
CALCULATOR = """\
name: calculator
description: Answers arithmetic questions.
llm:
  provider: anthropic            # anthropic (official SDK) | openai (any OpenAI-compatible server)
  model: claude-sonnet-4-5
  temperature: 0
  max_tokens: 1024
  # base_url: optional; otherwise ANTHROPIC_BASE_URL / OPENAI_BASE_URL as the SDKs read them
  # api_key_env: optional; default ANTHROPIC_API_KEY / OPENAI_API_KEY
system_prompt: You are a careful assistant. Use the calculator for any arithmetic.
tools:
  - calculator
limits:
  max_iterations: 8
  timeout_s: 60
  max_cost_usd: 0.10
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(text: str, **kw: object) -> str:
    with pytest.raises(AgentSpecError) as info:
        parse_agent(textwrap.dedent(text), path="a.yaml", **kw)  # type: ignore[arg-type]
    return str(info.value)


def test_the_issue_example_loads_as_written(tmp_path: Path) -> None:
    source = load_agent(write(tmp_path, CALCULATOR))
    spec = source.spec
    assert (spec.name, spec.llm.provider, spec.llm.model, spec.llm.temperature, spec.llm.max_tokens) == (
        "calculator", "anthropic", "claude-sonnet-4-5", 0, 1024)
    assert (spec.limits.max_iterations, spec.limits.timeout_s, spec.limits.max_cost_usd) == (8, 60, 0.10)
    assert [(t.kind, t.slot) for t in source.tools] == [("calculator", "tool.0.calculator")]
    assert source.variables == ()
    assert source.base_dir == str(tmp_path.resolve())


def test_an_unknown_key_names_its_line_column_and_the_closest_key() -> None:
    message = error_of("""\
        name: a
        llm:
          provider: openai
          model: m
          max_token: 10
        """)
    assert message == "a.yaml:5:3: unknown key `max_token` in `llm` (did you mean `max_tokens`?)"


def test_an_unknown_top_level_key_lists_the_valid_ones_when_nothing_is_close() -> None:
    message = error_of("name: a\nllm: {provider: openai, model: m}\nzzz: 1\n")
    assert message.startswith("a.yaml:3:1: unknown key `zzz`; valid keys: ")
    assert "system_prompt" in message


def test_a_wrong_type_names_the_key_path_and_the_expected_type() -> None:
    message = error_of("name: a\nllm: {provider: openai, model: m}\nlimits:\n  max_iterations: eight\n")
    assert message.startswith("a.yaml:4:19: `limits.max_iterations`: Input should be a valid integer")
    assert "'eight'" in message


def test_a_missing_key_and_every_problem_are_reported_in_line_order() -> None:
    message = error_of("name: a\nllm:\n  provider: openai\nlimits: {max_iterations: 0}\n")
    lines = message.splitlines()
    assert lines[0] == "a.yaml:2:1: `llm` needs the key `model`"
    assert lines[1].startswith("a.yaml:4:26: `limits.max_iterations`: Input should be greater than or equal to 1")


def test_an_unknown_provider_and_tool_are_named() -> None:
    assert "`llm.provider`: unknown provider 'opnai'; expected one of: anthropic, openai" in error_of(
        "name: a\nllm: {provider: opnai, model: m}\n")
    assert error_of("name: a\nllm: {provider: openai, model: m}\ntools: [calculater]\n") == (
        "a.yaml:3:9: unknown tool `calculater` (did you mean `calculator`?)")


def test_tool_options_are_validated_strictly_at_their_line() -> None:
    message = error_of("""\
        name: a
        llm: {provider: openai, model: m}
        tools:
          - calculator:
              timeout: 3
        """)
    assert message == "a.yaml:5:7: unknown key `timeout` in `tools.0.calculator` (did you mean `timeout_s`?)"


def test_a_duplicate_key_and_bad_yaml_are_located() -> None:
    assert error_of("name: a\nname: b\n") == "a.yaml:2:1: duplicate key `name`"
    assert error_of("name: [a\nllm: 1\n").startswith("a.yaml:2:")


def test_a_bad_template_is_located() -> None:
    message = error_of("name: a\nllm: {provider: openai, model: m}\nsystem_prompt: 'Hi {{ user '\n")
    assert message.startswith("a.yaml:3:16: `system_prompt` is not a valid template")


def test_environment_variables_are_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMU_TEST_MODEL", "gpt-4o-mini")
    monkeypatch.delenv("NAMU_TEST_UNSET", raising=False)
    source = parse_agent(
        "name: a\nllm: {provider: openai, model: '${NAMU_TEST_MODEL}', base_url: '${NAMU_TEST_UNSET:-http://127.0.0.1:1/v1}'}\n"
        "system_prompt: 'costs $${HOME}'\n"
    )
    assert source.spec.llm.model == "gpt-4o-mini"
    assert source.spec.llm.base_url == "http://127.0.0.1:1/v1"
    assert source.spec.system_prompt == "costs ${HOME}"
    assert error_of("name: a\nllm: {provider: openai, model: '${NAMU_TEST_UNSET}'}\n").startswith(
        "a.yaml:2:32: environment variable NAMU_TEST_UNSET is not set")


def test_secrets_are_never_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    message = error_of("name: a\nllm: {provider: openai, model: m}\nsystem_prompt: 'token ${GITHUB_TOKEN}'\n")
    assert message.startswith("a.yaml:3:16: ${GITHUB_TOKEN} would write a secret into the compiled agent")
    assert "ghp_secret" not in message


def test_overrides_are_validated_like_the_file() -> None:
    text = "name: a\nllm: {provider: openai, model: m}\n"
    source = parse_agent(text, overrides=["llm.temperature=0.2", "limits.max_iterations=3"])
    assert (source.spec.llm.temperature, source.spec.limits.max_iterations) == (0.2, 3)
    with pytest.raises(AgentSpecError, match=r"^--override llm.temprature: unknown key `temprature` in `llm` \(did you mean `temperature`\?\)"):
        parse_agent(text, overrides=["llm.temprature=0.2"])
    with pytest.raises(AgentSpecError, match="expected KEY=VALUE"):
        parse_agent(text, overrides=["llm.temperature"])


def test_template_variables_become_the_agents_inputs() -> None:
    source = parse_agent(
        "name: a\nllm: {provider: openai, model: m}\nsystem_prompt: 'You help {{ customer }} in {{ language }}.'\n"
        "prompt: '{{ input }} ({{ customer }})'\nvariables: {language: English}\n"
    )
    assert source.variables == (("customer", None), ("language", "English"))
    art = namu.compile(namu.Agent(source))
    assert [(p.name, p.default) for p in art.signature.params] == [("input", ""), ("customer", None), ("language", "English")]
    with pytest.raises(namu.InputError, match="agent 'a' needs the template variable 'customer'"):
        art(input="hi")


_VALUES = st.one_of(
    st.text(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    source=st.one_of(
        st.text(alphabet=st.characters(blacklist_characters="{"), max_size=40),
        st.lists(st.sampled_from(["a", " ", "\n", "\r", "\r\n", "}", "%", "#"]), max_size=8).map("".join),
        st.builds(lambda pad: f"{{{{{pad}input{pad[::-1]}}}}}", st.sampled_from(["", " ", "  "])),
    ),
    value=_VALUES,
)
def test_templates_rendered_without_jinja_render_as_jinja_would(source: str, value: object) -> None:
    """Static text and a lone ``{{ input }}`` skip Jinja2 at run time: same text."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    from namu.runtime.llm.react import _template

    jinja = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    assert _template(source)({"input": value}) == jinja.from_string(source).render({"input": value})


def test_a_lone_variable_template_without_its_value_fails_as_jinja_does() -> None:
    from jinja2.exceptions import UndefinedError

    from namu.runtime.llm.react import _template

    with pytest.raises(UndefinedError, match="'customer' is undefined"):
        _template("{{ customer }}")({"input": "x"})


def test_the_json_schema_describes_the_format_and_every_tool_kind() -> None:
    schema = agent_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "llm"}
    kinds = schema["properties"]["tools"]["items"]["anyOf"]
    assert set(kinds[0]["enum"]) == {"calculator", "filesystem", "http", "python", "mcp"}
    assert {next(iter(k["properties"])) for k in kinds[1:]} == {"calculator", "filesystem", "http", "python", "mcp"}
    llm = schema["$defs"]["LLMSpec"]
    assert "max_tokens" in llm["properties"] and llm["additionalProperties"] is False


def test_the_lowered_agent_is_a_loop_of_gated_llm_calls_and_tool_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-never-written-0123456789")
    art = namu.compile(write(tmp_path, CALCULATOR))
    text = format_graph(art.model, spans=False)
    assert "namu.AgentStart" in text and "namu.Loop(%max_iterations, %going, %state)" in text
    assert ('namu.Gate[retries=3, timeout_s=60.0, backoff_base_s=0.5, backoff_max_s=30.0, fallback="", '
            'breaker="anthropic/claude-sonnet-4-5", breaker_threshold=5, breaker_cooldown_s=30.0]') in text
    assert "namu.Map[flatten=0](%calls)" in text and "namu.Task[task=tool](%tool0, %call)" in text
    assert "namu.AgentFinish(%final)" in text
    saved = art.save(tmp_path / "calc.onnx").read_bytes()
    assert b"sk-ant-secret" not in saved and b"ANTHROPIC_API_KEY" not in saved


def test_namu_validate_and_schema(tmp_path: Path) -> None:
    good = write(tmp_path, CALCULATOR, "good.yaml")
    bad = write(tmp_path, "name: a\nllm: {provider: openai, model: m, max_token: 3}\nlimits: {max_iterations: x}\n", "bad.yaml")
    ok = namu_cli("validate", str(good), cwd=tmp_path)
    assert (ok.returncode, ok.stdout) == (0, f"ok: {good}\n")
    proc = namu_cli("validate", str(good), str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {bad}:2:35: unknown key `max_token` in `llm` (did you mean `max_tokens`?)",
        f"error: {bad}:3:26: `limits.max_iterations`: Input should be a valid integer, unable to parse string as an integer, got 'x'",
    ]
    run = namu_cli("run", str(bad), "-i", "hi", cwd=tmp_path)
    assert_error(run, 2, f"{bad}:2:35: unknown key `max_token`", "(and 1 more problem: `namu validate")
    template = write(tmp_path, "name: a\nllm: {provider: openai, model: m}\nprompt: '{{ input '\n", "template.yaml")
    assert_error(namu_cli("run", str(template), "-i", "hi", cwd=tmp_path), 2, f"{template}:3:9: `prompt` is not a valid template")
    schema = namu_cli("schema", "agent", cwd=tmp_path)
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "namu agent"


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=12,
)
_keys = st.sampled_from(["name", "llm", "tools", "limits", "cache", "prompt", "system_prompt", "variables", "x"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6), st.lists(st.text(max_size=20), max_size=2))
def test_any_document_is_an_agent_or_a_located_error(document: dict[str, object], overrides: list[str]) -> None:
    """Whatever the document and the overrides, reading it gives an agent or an
    AgentSpecError (never another exception), as YAML text and as a mapping."""
    import yaml

    for source in (document, yaml.safe_dump(document)):
        try:
            parse_agent(source, path="a.yaml", overrides=overrides)  # type: ignore[arg-type]
        except AgentSpecError as exc:
            assert str(exc).strip()


def test_without_the_agents_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(AgentSpecError, match=r"agent files need the package 'yaml': pip install 'namu\[agents\]'"):
        parse_agent("name: a\n")
    monkeypatch.setitem(sys.modules, "namu.runtime.llm.anthropic", None)
    from namu.runtime.llm.providers import provider_class

    with pytest.raises(AgentSpecError, match=r"the anthropic provider needs the package .*namu\[agents\]"):
        provider_class("anthropic")
