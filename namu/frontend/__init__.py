"""The frontend: ``@namu.task``, ``@namu.workflow`` and the Python ``ast`` -> IR lowering."""
