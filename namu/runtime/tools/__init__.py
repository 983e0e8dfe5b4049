"""The tools an agent can call: calculator, filesystem, http, Python functions, MCP servers."""
