"""The agent frontend: one YAML file is one ReAct agent, validated and lowered into namu IR."""
