"""The text ReAct protocol, for models without native tool use (``tool_mode: text``).

The tools are described in the system prompt (:func:`render_tools`) and the model
answers in the format of ReAct (Yao et al., "ReAct: Synergizing Reasoning and Acting in
Language Models", ICLR 2023) as LangChain's ReAct agent writes it::

    Thought: I need to multiply.
    Action: calculator
    Action Input: {"expression": "25 * 47"}

then stops; the tool's result comes back as the next user turn
(:func:`format_observation`), ``Observation: 1175``, and so on until::

    Thought: I now know the final answer.
    Final Answer: 25 * 47 = 1175.

:func:`parse` reads an answer into a final answer or tool calls, tolerating the slips
models commonly make, and lists in :attr:`Parsed.problems` what it could not read or
left out:

* labels in another case (``action:``), with extra spaces, or in markdown bold
  (``**Action:**``); ``Action_Input``/``ActionInput`` for ``Action Input``;
* the input in a markdown code fence, or followed by more text;
* JSON with single quotes, trailing commas or Python's ``True``/``False``/``None``
  (tried as JSON, then repaired, then as a Python literal with :func:`ast.literal_eval`);
* the input on the lines after ``Action:`` without its label;
* no ``Action Input`` for a tool whose input has no required field;
* a bare string as the input of a tool whose input is one string field;
* LangChain's JSON form, ``{"action": NAME, "action_input": {...}}``;
* the model writing the ``Observation:`` itself: the text from there on is left out.

Neither a readable action nor a ``Final Answer``: the whole text is the final answer,
and a problem says so.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from namu.runtime.llm.messages import ToolCall, ToolResult, ToolSpec

__all__ = ["Parsed", "format_observation", "parse", "render_tools"]

#: the prefix of the ids of the tool calls :func:`parse` makes (``text-1``, ``text-2``, ...)
CALL_ID_PREFIX = "text-"

_FORMAT = """\
To use a tool, answer in exactly this format, then stop:

Thought: what you think about what to do next
Action: the tool's name, one of [{names}]
Action Input: the tool's input, one JSON object matching the tool's input schema

The tool's result will come back to you as:

Observation: the result

Repeat Thought, Action, Action Input and Observation as many times as you need. Never
write an Observation yourself. When you know the answer, write:

Thought: I now know the final answer
Final Answer: your answer to the user"""


def render_tools(tools: Sequence[ToolSpec]) -> str:
    """The instructions appended to the system prompt: each tool with its JSON Schema,
    then the exact answer format.

    Args:
        tools: the tools the model may call.

    Returns:
        The text (with no tools, only the ``Final Answer`` format).
    """
    if not tools:
        return "Answer in this format:\n\nFinal Answer: your answer to the user"
    lines = ["You have access to the following tools:", ""]
    for tool in tools:
        description = " ".join(tool.description.split())
        lines.append(f"{tool.name}: {description}" if description else tool.name)
        lines.append(f"  Input JSON Schema: {json.dumps(tool.input_schema, ensure_ascii=False, sort_keys=True)}")
    lines += ["", _FORMAT.format(names=", ".join(tool.name for tool in tools))]
    return "\n".join(lines)


def format_observation(results: Sequence[ToolResult]) -> str:
    """The next user turn, reporting tool results to the model.

    One result reads ``Observation: CONTENT``; several are numbered in the order of the
    calls (``Observation 2 (calculator): ...``). A failed call's content starts with
    ``Error:``.

    Args:
        results: the results of the calls of the model's last answer, in order.

    Returns:
        The text of the user message.
    """

    def content(result: ToolResult) -> str:
        return f"Error: {result.content}" if result.is_error else result.content

    if len(results) == 1:
        return f"Observation: {content(results[0])}"
    return "\n\n".join(f"Observation {i} ({r.name}): {content(r)}" for i, r in enumerate(results, 1))


@dataclasses.dataclass(frozen=True, slots=True)
class Parsed:
    """A model's answer in the text protocol, read.

    Attributes:
        answer: the answer to the user, or None when the model called tools.
        tool_calls: the tool calls, in order (empty for a final answer).
        thought: the model's reasoning (the ``Thought:`` text, or what came before the
            first label), "" for none.
        problems: what could not be read or was left out, one sentence each (empty
            when the answer followed the format).
    """

    answer: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    thought: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)


#: a label at the start of a line: optional markdown before it (``#``, ``>``, ``-``), the
#: label in any case, and markdown bold around it (``**Action:**`` or ``**Action**:``)
_LABEL = re.compile(
    r"^[ \t>#-]*(?P<bold>\*\*|__)?[ \t]*"
    r"(?P<label>final[ \t_]*answer|action[ \t_]*input|action|thought|observation)"
    r"[ \t]*(?P<closed>\*\*|__)?[ \t]*:(?(bold)(?(closed)|(?:[ \t]*(?:\*\*|__))?))[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
#: a whole text in a markdown code fence (```json ... ```)
_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n?(?P<body>.*?)\n?[ \t]*```$", re.DOTALL)
#: a tool and its input on the Action line: the ReAct paper's ``calculator[25 * 47]``,
#: ``calculator(...)``, or the input after the name (``calculator {"expression": ...}``)
_INLINE = re.compile(r"^(?P<name>[\w-]+)(?:\s*\[(?P<square>.*)\]|\s*\((?P<round>.*)\)|[:\s]\s*(?P<rest>.+))$", re.DOTALL)
#: the tokens JSON repair works on: a string in either quote, a word, white space, one character
_TOKEN = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_]\w*|\s+|.""", re.DOTALL)
#: in the body of a single-quoted string: an escape sequence, or a double quote
_SINGLE_QUOTED_BODY = re.compile(r'\\(.)|"', re.DOTALL)
_PYTHON_WORDS = {"True": "true", "False": "false", "None": "null"}
#: what a tool name may be (what both providers accept)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: the action name of a final answer in LangChain's JSON form
_FINAL_ACTION = "final answer"
#: what the readers of an Action Input return for a text they cannot read
_UNREADABLE = object()


@dataclasses.dataclass(frozen=True, slots=True)
class _Segment:
    """A label and its text: the label starts at ``head``, its text runs from ``start``
    (after the colon) to ``end`` (the next label)."""

    label: str  # "final answer", "action input", "action", "thought" or "observation"
    head: int
    start: int
    end: int


def _segments(text: str) -> list[_Segment]:
    matches = list(_LABEL.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [
        _Segment(re.sub(r"[ \t_]*(input|answer)$", r" \1", m["label"].lower()), m.start(), m.end(), end)
        for m, end in zip(matches, ends)
    ]


def parse(text: str, tools: Sequence[ToolSpec] = (), *, first_id: int = 1) -> Parsed:
    """Read a model's answer in the text ReAct protocol.

    Whichever comes first decides: a ``Final Answer`` (everything after its label is
    the answer) or ``Action``/``Action Input`` pairs, read up to an ``Observation`` the
    model wrote itself or a ``Final Answer`` it wrote before seeing any observation
    (both left out, with a problem; such a Final Answer is the answer only when no
    action could be read). ``Thought`` lines between actions are allowed.

    Args:
        text: the model's answer.
        tools: the tools offered. They tell whether a tool needs an ``Action Input``,
            whether a bare string can be its input, and match names written in another
            case; an action naming another tool is not a valid action. With none,
            every name is taken as written.
        first_id: the number in the first call's id (``text-1``); give one more than
            the calls made so far in the run, so that ids stay unique across its turns.

    Returns:
        The final answer or the tool calls, the thought, and the problems found.
    """
    segments = _segments(text)
    problems: list[str] = []
    first = next((i for i, s in enumerate(segments) if s.label in ("action", "final answer")), len(segments))
    lead = text[: segments[0].head] if segments else ""
    thoughts = [text[s.start : s.end].strip() for s in segments[:first] if s.label == "thought"]
    thought = "\n".join(filter(None, [lead.strip(), *thoughts]))
    if first < len(segments) and segments[first].label == "final answer":
        answer = text[segments[first].start :].strip()
        if not answer:
            problems.append("the Final Answer is empty")
        return Parsed(answer, (), thought, problems)
    calls: list[ToolCall] = []
    final = None
    for name, raw_input in _actions(text, segments[first:], problems):
        if name is None:  # a Final Answer after the actions
            final = raw_input
            break
        if name.lower() == _FINAL_ACTION and not _tool(tools, name):
            final = _unquoted(_unfenced(raw_input or ""))
            break
        call = _call(name, raw_input, tools, f"{CALL_ID_PREFIX}{first_id + len(calls)}", problems)
        if call is not None:
            calls.append(call)
    if calls:
        if final is not None:
            problems.append("a Final Answer came after an Action, before its Observation; left it out")
        return Parsed(None, tuple(calls), thought, problems)
    if final is not None:
        return Parsed(final, (), thought, problems)
    problems.append("found neither a readable Action nor a Final Answer; took the whole text as the final answer")
    return Parsed(text.strip(), (), thought, problems)


def _actions(text: str, segments: list[_Segment], problems: list[str]) -> Iterator[tuple[str | None, str | None]]:
    """``(tool name, its raw input or None)`` of each action from the first on, then
    ``(None, answer)`` for a Final Answer that follows them."""
    i = 0
    while i < len(segments):
        segment = segments[i]
        body = text[segment.start : segment.end]
        i += 1
        if segment.label == "thought":
            continue
        if segment.label == "observation":
            problems.append("the model wrote an Observation itself; left out the text from there on")
            return
        if segment.label == "final answer":
            yield None, text[segment.start :].strip()
            return
        if segment.label == "action input":
            problems.append("an Action Input came without an Action before it; left it out")
            continue
        raw_input: str | None = None
        if i < len(segments) and segments[i].label == "action input":
            raw_input = text[segments[i].start : segments[i].end]
            i += 1
        langchain = _langchain_action(body)
        if langchain is not None:
            yield langchain
            continue
        name, _, rest = body.strip().partition("\n")
        if raw_input is None and rest.strip():
            raw_input = rest  # the input on the lines after the name, without its label
        yield _clean_name(name), raw_input


def _clean_name(name: str) -> str:
    """A tool name without the quotes, backticks, bold and final period models add."""
    return re.sub(r"^[\s`'\"*]+|[\s`'\"*.:]+$", "", name)


def _langchain_action(body: str) -> tuple[str, str] | None:
    """``(name, input as JSON text)`` of LangChain's ``{"action": ..., "action_input": ...}``."""
    body = _unfenced(body)
    if not body.startswith("{"):
        return None
    value = _load(body)
    if not (isinstance(value, dict) and isinstance(value.get("action"), str)):
        return None
    argument = value.get("action_input", {})
    return _clean_name(value["action"]), argument if isinstance(argument, str) else json.dumps(argument)


def _tool(tools: Sequence[ToolSpec], name: str) -> ToolSpec | None:
    """The tool named ``name``, exactly or else in another case."""
    return next((t for t in tools if t.name == name), None) or next(
        (t for t in tools if t.name.lower() == name.lower()), None
    )


def _call(name: str, raw_input: str | None, tools: Sequence[ToolSpec], call_id: str, problems: list[str]) -> ToolCall | None:
    """The tool call of one action, or None (with a problem) when it is not valid."""
    tool = _tool(tools, name)
    if tool is None and raw_input is None and (inline := _INLINE.match(name)):
        name = inline["name"]
        raw_input = next(part for part in (inline["square"], inline["round"], inline["rest"]) if part is not None)
        tool = _tool(tools, name)
    if tool is not None:
        name = tool.name
    elif not _TOOL_NAME.match(name):
        problems.append(f"the Action {_excerpt(name)!r} is not a tool name; left it out")
        return None
    elif tools:
        problems.append(f"the Action names an unknown tool {name!r} (the tools are: {', '.join(t.name for t in tools)}); left it out")
        return None
    arguments = _arguments(name, raw_input, tool, problems)
    return None if arguments is None else ToolCall(call_id, name, arguments)


def _arguments(name: str, raw_input: str | None, tool: ToolSpec | None, problems: list[str]) -> dict[str, Any] | None:
    """The input of a call of ``name`` read from ``raw_input``, or None (with a problem)."""
    raw = _unfenced(raw_input or "")
    schema = tool.input_schema if tool is not None else {}
    if not raw:
        required = schema.get("required") or []
        if tool is None or not required:
            return {}
        problems.append(f"the Action of {name!r} has no Action Input (it requires {', '.join(map(str, required))})")
        return None
    value = _load(raw)
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    properties = schema.get("properties") or {}
    if len(properties) == 1:
        (field, field_schema), = properties.items()
        if isinstance(field_schema, dict) and field_schema.get("type") == "string":
            return {field: value if isinstance(value, str) else _unquoted(raw)}
    if value is _UNREADABLE:
        problems.append(f"could not read the Action Input of {name!r} as a JSON object: {_excerpt(raw)}")
    else:
        problems.append(f"the Action Input of {name!r} is not a JSON object: {_excerpt(raw)}")
    return None


def _load(raw: str) -> Any:
    """``raw`` read as JSON, as repaired JSON, then as a Python literal; failing that, the
    first ``{...}`` object in it the same way; else :data:`_UNREADABLE`."""
    candidates = [raw]
    embedded = _first_object(raw)
    if embedded is not None and embedded != raw:
        candidates.append(embedded)
    for candidate in candidates:
        for read in (_json, _repaired_json, _python_literal):
            value = read(candidate)
            if value is not _UNREADABLE:
                return value
    return _UNREADABLE


def _json(text: str) -> Any:
    try:
        return json.loads(text, strict=False)  # strict=False: raw newlines in strings
    except (ValueError, RecursionError):
        return _UNREADABLE


def _repaired_json(text: str) -> Any:
    """``text`` as JSON after repairs outside strings: single-quoted strings become
    double-quoted, trailing commas go, ``True``/``False``/``None`` become JSON's."""
    tokens = _TOKEN.findall(text)
    out = []
    for i, token in enumerate(tokens):
        if token.startswith("'") and len(token) > 1:
            out.append(f'"{_SINGLE_QUOTED_BODY.sub(_as_double_quoted, token[1:-1])}"')
        elif token == ",":
            j = i + 1
            while j < len(tokens) and tokens[j].isspace():
                j += 1
            if j == len(tokens) or tokens[j] not in ("}", "]"):
                out.append(token)
        else:
            out.append(_PYTHON_WORDS.get(token, token))
    repaired = "".join(out)
    return _json(repaired) if repaired != text else _UNREADABLE


def _as_double_quoted(match: re.Match[str]) -> str:
    """A piece of a single-quoted string's body as it reads in a double-quoted one:
    ``\\'`` needs no escape there, ``"`` does, other escapes stay."""
    if match[1] is None:
        return '\\"'
    return "'" if match[1] == "'" else match[0]


def _python_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNREADABLE


def _first_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text`` (braces inside strings not counted)."""
    tokens = _TOKEN.findall(text)
    depth = 0
    start = None
    for i, token in enumerate(tokens):
        if token == "{":
            start = i if start is None else start
            depth += 1
        elif token == "}" and start is not None:
            depth -= 1
            if depth == 0:
                return "".join(tokens[start : i + 1])
    return None


def _unfenced(text: str) -> str:
    """``text`` stripped, without a markdown code fence or inline backticks around it."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        return fenced["body"].strip()
    if text.startswith("```"):  # an unclosed fence
        return text.partition("\n")[2].strip()
    if len(text) > 1 and text[0] == text[-1] == "`":
        return text.strip("`").strip()
    return text


def _unquoted(text: str) -> str:
    """``text`` without one pair of matching quotes around it."""
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _excerpt(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
