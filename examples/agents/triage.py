"""Agents as steps of a workflow: answer every question with the calculator agent, in
parallel under the run's concurrency cap, and let the librarian explain the numbers.

    namu run examples/agents/triage.py -i 'questions=["What is 25 * 47?", "What is 2**10?"]'
"""

from pathlib import Path

import namu

HERE = Path(__file__).resolve().parent
calculator = namu.agent(HERE / "calculator.yaml")


@namu.task
def numbered(answers: list[str]) -> str:
    return "\n".join(f"{i}. {answer}" for i, answer in enumerate(answers, 1))


@namu.workflow
def triage(questions: list[str]) -> str:
    answers = [calculator(q) for q in questions]  # one agent run per question, concurrently
    return numbered(answers)
