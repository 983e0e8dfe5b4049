"""The text ReAct protocol (``tool_mode: text``): the instructions, the observations, and
a parser that reads the canonical format and the slips models make."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from namu.runtime.llm.messages import ToolCall, ToolResult, ToolSpec
from namu.runtime.llm.text_protocol import (
    Parsed,
    format_observation,
    parse,
    render_tools,
)

CALCULATOR = ToolSpec(
    "calculator",
    "Evaluates arithmetic.",
    {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
CLOCK = ToolSpec("clock", "Tells the time.", {"type": "object", "properties": {"tz": {"type": "string"}}})
SEARCH = ToolSpec(
    "web_search",
    "Searches the web.",
    {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]},
)
TOOLS = (CALCULATOR, CLOCK, SEARCH)


def only_call(parsed: Parsed) -> ToolCall:
    assert parsed.answer is None, parsed
    assert len(parsed.tool_calls) == 1, parsed
    return parsed.tool_calls[0]


# -- the instructions and the observations ---------------------------------------------------


def test_render_tools_lists_each_tool_with_its_schema_and_the_format() -> None:
    text = render_tools(TOOLS)
    for tool in TOOLS:
        assert f"{tool.name}: {tool.description}" in text
        assert json.dumps(tool.input_schema, sort_keys=True) in text
    assert "one of [calculator, clock, web_search]" in text
    for line in ("Thought:", "Action:", "Action Input:", "Observation:", "Final Answer:"):
        assert f"\n{line}" in text


def test_render_tools_without_tools_asks_for_a_answer() -> None:
    assert "Final Answer:" in render_tools(())
    assert "Action" not in render_tools(())


def test_the_rendered_format_example_parses_as_an_action() -> None:
    """The model is shown the format it must answer in; that format is what parse reads."""
    call = only_call(parse('Thought: multiply\nAction: calculator\nAction Input: {"expression": "2 * 3"}', TOOLS))
    assert (call.id, call.name, call.arguments) == ("text-1", "calculator", {"expression": "2 * 3"})


def test_format_observation_one_and_several_results() -> None:
    assert format_observation([ToolResult("text-1", "calculator", "1175")]) == "Observation: 1175"
    text = format_observation([
        ToolResult("text-1", "calculator", "6"),
        ToolResult("text-2", "clock", "no such zone", is_error=True),
    ])
    assert text == "Observation 1 (calculator): 6\n\nObservation 2 (clock): Error: no such zone"


# -- the canonical format ---------------------------------------------------------------------


def test_answer_keeps_everything_after_its_label() -> None:
    parsed = parse("Thought: I know it.\nFinal Answer: 25 * 47 = 1175.\nAction: it is all the answer", TOOLS)
    assert parsed == Parsed("25 * 47 = 1175.\nAction: it is all the answer", (), "I know it.", [])


def test_several_actions_get_consecutive_ids_from_first_id() -> None:
    text = (
        'Action: calculator\nAction Input: {"expression": "1+1"}\n'
        "Thought: and the time\nAction: clock\nAction Input: {}"
    )
    parsed = parse(text, TOOLS, first_id=7)
    assert parsed.tool_calls == (
        ToolCall("text-7", "calculator", {"expression": "1+1"}),
        ToolCall("text-8", "clock", {}),
    )
    assert parsed.problems == []


def test_text_before_the_first_label_is_the_thought() -> None:
    parsed = parse('I should compute this.\nAction: calculator\nAction Input: {"expression": "1"}', TOOLS)
    assert parsed.thought == "I should compute this."


# -- each slip -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'action: calculator\naction input: {"expression": "1+2"}',
        'ACTION : calculator\nACTION INPUT :   {"expression": "1+2"}',
        '  Action:   calculator  \n  Action Input:{"expression": "1+2"}  ',
        '**Action:** calculator\n**Action Input:** {"expression": "1+2"}',
        '**Action**: `calculator`\n**Action Input**: {"expression": "1+2"}',
        'Action: "calculator".\nAction_Input: {"expression": "1+2"}',
        'Action: Calculator\nActionInput: {"expression": "1+2"}',
        '## Action: calculator\n## Action Input: {"expression": "1+2"}',
    ],
)
def test_labels_in_another_case_spacing_or_markdown(text: str) -> None:
    parsed = parse(text, TOOLS)
    assert only_call(parsed) == ToolCall("text-1", "calculator", {"expression": "1+2"})
    assert parsed.problems == []


@pytest.mark.parametrize(
    "raw_input",
    [
        '```json\n{"expression": "1+2"}\n```',
        '```\n{"expression": "1+2"}\n```',
        '`{"expression": "1+2"}`',
        '```json\n{"expression": "1+2"}',  # a fence never closed
        "{'expression': '1+2'}",
        '{"expression": "1+2",}',
        "{'expression': '1+2',}",
        '{\n  "expression": "1+2",\n}',
        '{"expression": "1+2"} and then I will read the result',
    ],
)
def test_action_input_slips(raw_input: str) -> None:
    parsed = parse(f"Action: calculator\nAction Input: {raw_input}", TOOLS)
    assert only_call(parsed).arguments == {"expression": "1+2"}
    assert parsed.problems == []


def test_python_literals_and_quotes_inside_strings_survive_repair() -> None:
    raw = "{'query': 'it\\'s \"quoted\", {braced}', 'limit': None, 'exact': True,}"
    parsed = parse(f"Action: web_search\nAction Input: {raw}", TOOLS)
    assert only_call(parsed).arguments == {"query": "it's \"quoted\", {braced}", "limit": None, "exact": True}


def test_missing_action_input_for_a_tool_without_required_fields() -> None:
    parsed = parse("Thought: what time is it\nAction: clock", TOOLS)
    assert only_call(parsed) == ToolCall("text-1", "clock", {})
    assert parsed.problems == []


def test_missing_action_input_for_a_tool_with_required_fields_is_a_problem() -> None:
    parsed = parse("Action: calculator", TOOLS)
    assert parsed.tool_calls == ()
    assert parsed.answer == "Action: calculator"
    assert any("no Action Input" in p and "expression" in p for p in parsed.problems)
    assert any("neither a readable Action nor a Final Answer" in p for p in parsed.problems)


@pytest.mark.parametrize("raw_input", ["25 * 47", '"25 * 47"', "'25 * 47'", "```\n25 * 47\n```"])
def test_a_bare_string_input_for_a_one_string_tool(raw_input: str) -> None:
    parsed = parse(f"Action: calculator\nAction Input: {raw_input}", TOOLS)
    assert only_call(parsed).arguments == {"expression": "25 * 47"}
    assert parsed.problems == []


def test_a_bare_number_for_a_one_string_tool_is_its_text() -> None:
    assert only_call(parse("Action: calculator\nAction Input: 1175", TOOLS)).arguments == {"expression": "1175"}


def test_a_bare_string_for_a_tool_of_several_fields_is_a_problem() -> None:
    parsed = parse("Action: web_search\nAction Input: namu compiler", TOOLS)
    assert parsed.tool_calls == ()
    assert any("could not read the Action Input of 'web_search'" in p for p in parsed.problems)


def test_a_json_value_that_is_not_an_object_is_a_problem() -> None:
    parsed = parse("Action: web_search\nAction Input: [1, 2]", TOOLS)
    assert parsed.tool_calls == ()
    assert any("is not a JSON object" in p for p in parsed.problems)


def test_the_model_writing_its_own_observation_is_cut_there() -> None:
    text = (
        'Action: calculator\nAction Input: {"expression": "25 * 47"}\n'
        "Observation: 1175\nThought: I know it\nFinal Answer: 1175"
    )
    parsed = parse(text, TOOLS)
    assert only_call(parsed).arguments == {"expression": "25 * 47"}
    assert parsed.problems == ["the model wrote an Observation itself; left out the text from there on"]


def test_a_answer_right_after_an_action_is_left_out() -> None:
    parsed = parse('Action: calculator\nAction Input: {"expression": "1"}\nFinal Answer: 1', TOOLS)
    assert only_call(parsed).name == "calculator"
    assert any("Final Answer came after an Action" in p for p in parsed.problems)


def test_an_unreadable_action_before_a_answer_yields_the_answer() -> None:
    parsed = parse("Action: None\nFinal Answer: 42", TOOLS)
    assert parsed.answer == "42"
    assert parsed.tool_calls == ()
    assert any("unknown tool 'None'" in p for p in parsed.problems)


def test_input_on_the_lines_after_the_action_without_its_label() -> None:
    parsed = parse('Action: calculator\n```json\n{"expression": "5"}\n```', TOOLS)
    assert only_call(parsed).arguments == {"expression": "5"}


@pytest.mark.parametrize(
    "line",
    ["calculator[25 * 47]", "calculator(25 * 47)", 'calculator {"expression": "25 * 47"}', "calculator: 25 * 47"],
)
def test_tool_and_input_on_the_action_line(line: str) -> None:
    parsed = parse(f"Action: {line}", TOOLS)
    assert only_call(parsed).arguments == {"expression": "25 * 47"}


def test_langchain_json_action() -> None:
    text = 'Action:\n```json\n{"action": "web_search", "action_input": {"query": "namu"}}\n```'
    assert only_call(parse(text, TOOLS)) == ToolCall("text-1", "web_search", {"query": "namu"})


def test_langchain_json_answer() -> None:
    text = 'Action:\n```json\n{"action": "Final Answer", "action_input": "It is 1175."}\n```'
    assert parse(text, TOOLS) == Parsed("It is 1175.", (), "", [])


def test_an_unknown_tool_is_not_a_valid_action() -> None:
    parsed = parse('Action: calculater\nAction Input: {"expression": "1"}', TOOLS)
    assert parsed.tool_calls == ()
    assert parsed.answer == 'Action: calculater\nAction Input: {"expression": "1"}'
    assert any("unknown tool 'calculater'" in p and "calculator, clock, web_search" in p for p in parsed.problems)


def test_without_tools_any_tool_name_is_taken_as_written() -> None:
    assert only_call(parse('Action: lookup\nAction Input: {"id": 3}')) == ToolCall("text-1", "lookup", {"id": 3})


def test_an_action_that_is_not_a_tool_name() -> None:
    parsed = parse("Action: (none needed)", ())
    assert parsed.tool_calls == ()
    assert any("is not a tool name" in p for p in parsed.problems)


def test_an_action_input_without_an_action() -> None:
    parsed = parse('Action Input: {"expression": "1"}\nAction: clock', TOOLS)
    assert only_call(parsed).name == "clock"
    assert parsed.problems == []  # the first action decides; the stray input came before it


def test_an_empty_answer_is_a_problem() -> None:
    parsed = parse("Thought: done\nFinal Answer:", TOOLS)
    assert parsed.answer == ""
    assert parsed.problems == ["the Final Answer is empty"]


def test_plain_text_is_the_answer_with_a_problem() -> None:
    parsed = parse("  The answer is 1175.  \n", TOOLS)
    assert parsed.answer == "The answer is 1175."
    assert parsed.thought == ""
    assert parsed.problems == ["found neither a readable Action nor a Final Answer; took the whole text as the final answer"]


# -- properties over formatting variants ----------------------------------------------------------

_LABELS = ("Thought", "Action", "Action Input", "Final Answer")


@st.composite
def label_styles(draw: st.DrawFn) -> Any:
    """A way to write a label: its case, the spaces around the colon, markdown bold."""
    case = draw(st.sampled_from([str, str.lower, str.upper, str.title]))
    before = draw(st.sampled_from(["", " ", "\t"]))
    after = draw(st.sampled_from(["", " ", "   "]))
    bold = draw(st.sampled_from(["none", "inside", "outside"]))

    def write(label: str) -> str:
        name = case(label)
        if bold == "inside":
            return f"**{name}:**{after or ' '}"
        if bold == "outside":
            return f"**{name}**{before}:{after}"
        return f"{name}{before}:{after}"

    return write


_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 9), max_size=3),
)
_ARGUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=4)


@st.composite
def rendered_inputs(draw: st.DrawFn, arguments: dict[str, Any]) -> str:
    """``arguments`` written the ways models write an Action Input."""
    style = draw(st.sampled_from(["json", "indented", "python", "trailing-comma", "fenced", "fenced-bare", "backticks"]))
    text = json.dumps(arguments)
    if style == "indented":
        text = json.dumps(arguments, indent=2)
    elif style == "python":
        text = repr(arguments)
    elif style == "trailing-comma" and arguments:
        text = text[:-1] + ",}"
    elif style == "fenced":
        text = f"```json\n{json.dumps(arguments, indent=2)}\n```"
    elif style == "fenced-bare":
        text = f"```\n{text}\n```"
    elif style == "backticks":
        text = f"`{text}`"
    return text


_THOUGHTS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40).map(str.strip)


@given(data=st.data(), write=label_styles(), thought=_THOUGHTS, arguments=_ARGUMENTS, first_id=st.integers(1, 1000))
def test_any_formatting_of_an_action_gives_the_same_call(
    data: st.DataObject, write: Any, thought: str, arguments: dict[str, Any], first_id: int
) -> None:
    tool = ToolSpec("lookup", "Looks up.", {"type": "object", "properties": {k: {} for k in arguments}})
    raw = data.draw(rendered_inputs(arguments))
    text = f"{write('Thought')}{thought}\n{write('Action')}lookup\n{write('Action Input')}{raw}\n"
    parsed = parse(text, (tool,), first_id=first_id)
    assert parsed.tool_calls == (ToolCall(f"text-{first_id}", "lookup", arguments),), (text, parsed)
    assert parsed.answer is None
    assert parsed.problems == []


@given(write=label_styles(), thought=_THOUGHTS, answer=st.text(max_size=200))
def test_any_text_after_answer_is_the_answer(write: Any, thought: str, answer: str) -> None:
    parsed = parse(f"{write('Thought')}{thought}\n{write('Final Answer')}{answer}", TOOLS)
    assert parsed.answer == answer.strip()
    assert parsed.tool_calls == ()


@given(calls=st.lists(st.tuples(st.sampled_from(["calculator", "clock", "web_search"]), _ARGUMENTS), min_size=1, max_size=4))
def test_a_sequence_of_actions_round_trips(calls: list[tuple[str, dict[str, Any]]]) -> None:
    text = "".join(f"Thought: step {i}\nAction: {n}\nAction Input: {json.dumps(a)}\n" for i, (n, a) in enumerate(calls))
    parsed = parse(text, TOOLS)
    assert parsed.tool_calls == tuple(ToolCall(f"text-{i}", n, a) for i, (n, a) in enumerate(calls, 1))
    assert parsed.problems == []


@given(text=st.text(max_size=300))
def test_any_text_is_read_without_raising(text: str) -> None:
    parsed = parse(text, TOOLS)
    assert (parsed.answer is None) == bool(parsed.tool_calls)
    if parsed.problems and parsed.problems[-1].startswith("found neither"):
        assert parsed.answer == text.strip()
