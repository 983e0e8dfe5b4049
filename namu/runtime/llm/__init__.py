"""LLM calls: the provider-neutral messages, the adapters (Anthropic SDK, OpenAI-compatible
httpx), prices, and the steps of the ReAct loop an agent artifact runs."""
