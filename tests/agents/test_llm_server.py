"""The loopback LLM server itself: what the adapters' tests rely on and do not show."""

from __future__ import annotations

import base64
import math
import struct

import httpx
import pytest

from tests.agents.llm_server import Fault, LLMServer, Reply, embedding

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


def test_embeddings_are_deterministic_and_similar_for_shared_words(llm_server: LLMServer) -> None:
    texts = ["the cat sat on the mat", "the cat sat on a mat", "quarterly revenue grew"]
    with httpx.Client() as client:
        floats = client.post(f"{llm_server.openai_base_url}/embeddings", json={"model": "e", "input": texts}).json()
        packed = client.post(f"{llm_server.openai_base_url}/embeddings",
                             json={"model": "e", "input": texts[0], "encoding_format": "base64", "dimensions": 16}).json()

    vectors = [item["embedding"] for item in floats["data"]]
    assert vectors == [embedding(text) for text in texts] and len(vectors[0]) == 64

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b))

    assert cosine(vectors[0], vectors[1]) > 0.7 > cosine(vectors[0], vectors[2])
    assert math.isclose(cosine(vectors[0], vectors[0]), 1.0)
    decoded = struct.unpack("<16f", base64.b64decode(packed["data"][0]["embedding"]))
    assert [round(v, 6) for v in decoded] == [round(v, 6) for v in embedding(texts[0], 16)]
    assert floats["usage"]["prompt_tokens"] == 15  # words


@pytest.mark.parametrize(("body", "problem"), [
    ({"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "calculator", "input": {}}]},
        {"role": "user", "content": "well?"}]}, "without tool_result blocks"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
])
def test_anthropic_requests_are_checked(llm_server: LLMServer, body: dict, problem: str) -> None:
    llm_server.script(Reply(text="never sent"))
    with httpx.Client() as client:
        answer = client.post(f"{llm_server.anthropic_base_url}/v1/messages", headers=ANTHROPIC_HEADERS, json=body)

    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"
    assert problem in answer.json()["error"]["message"]
    assert llm_server.pending == 1  # a refused request consumes no step


def test_openai_tool_messages_must_answer_a_call(llm_server: LLMServer) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"},
                                       {"role": "tool", "tool_call_id": "c9", "content": "4"}]}
    with httpx.Client() as client:
        answer = client.post(f"{llm_server.openai_base_url}/chat/completions", json=body)

    assert answer.status_code == 400 and "must be a response to a preceding" in answer.json()["error"]["message"]


def test_failing_responder_answers_500(llm_server: LLMServer) -> None:
    def broken(request: dict, api: str) -> Reply:
        raise RuntimeError("responder bug")

    llm_server.responder = broken
    with httpx.Client() as client:
        answer = client.post(f"{llm_server.openai_base_url}/chat/completions",
                             json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})

    assert answer.status_code == 500 and "responder bug" in answer.json()["error"]["message"]


def test_keep_alive_and_reset(llm_server: LLMServer) -> None:
    llm_server.script(Reply(text="one"), Fault(status=500), Reply(text="three"))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client() as client:
        answers, ports = [], set()
        for _ in range(4):
            answers.append(client.post(f"{llm_server.openai_base_url}/chat/completions", json=body))
            ports.add(answers[-1].extensions["network_stream"].get_extra_info("client_addr")[1])

    assert len(ports) == 1  # one connection served all four, the error answer included

    assert [a.status_code for a in answers] == [200, 500, 200, 200]
    assert [a.json()["choices"][0]["message"]["content"] for a in answers if a.status_code == 200] == [
        "one", "three", "You said: hi"]
    llm_server.script(Reply(text="left over"))
    llm_server.reset()
    assert (llm_server.pending, llm_server.requests) == (0, [])


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="one of"):
        Fault(status=500, drop=True)
    with pytest.raises(ValueError, match="in_stream"):
        Fault(malformed=True, in_stream=True)
