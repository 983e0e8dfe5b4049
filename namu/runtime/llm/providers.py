"""What an LLM adapter is, and the registry that finds one by provider name.

An adapter (:class:`Provider`) turns a provider-neutral :class:`~namu.runtime.llm.messages.LLMRequest`
into one call of a provider's API and its answer into an
:class:`~namu.runtime.llm.messages.LLMResponse`, reporting text deltas and tool calls as they
stream in. It raises only :class:`~namu.errors.LLMError` subclasses, so the gate around
an LLM call knows what to retry. It never retries itself (SDK retries are turned off):
retries, timeouts, the circuit breaker and fallbacks are the IR's gates.

The API key is read from the environment (:attr:`Endpoint.api_key_env`) when the client
is made, never stored in an artifact, and never put into an error message.

A new provider is one registration::

    register_provider("mistral", "my_pkg.mistral:MistralProvider")
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import importlib
import os
import threading
from collections.abc import Callable
from typing import ClassVar

from namu.errors import AgentSpecError
from namu.runtime.llm.messages import AgentEvent, LLMRequest, LLMResponse

__all__ = ["Endpoint", "EventSink", "Provider", "provider_class", "provider_for", "provider_names", "register_provider"]

#: ``on_event(event)``: told of each text delta and tool call as a stream delivers it.
EventSink = Callable[[AgentEvent], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach one provider (what a client is made from).

    Attributes:
        provider: the registered provider name (``"anthropic"``, ``"openai"``).
        base_url: the API's base URL, or None: the provider's default (its SDK's
            environment variable, ``ANTHROPIC_BASE_URL`` / ``OPENAI_BASE_URL``, then its
            public URL).
        api_key_env: the environment variable holding the API key, or None: the
            provider's default (``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY``).
        timeout_s: the limit of one HTTP request, in seconds.
    """

    provider: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 600.0


class Provider(abc.ABC):
    """An LLM adapter bound to one :class:`Endpoint` (made by :func:`provider_for`).

    Subclasses set :attr:`name`, :attr:`default_api_key_env` and
    :attr:`default_base_url_env`, and implement :meth:`complete` and :meth:`aclose`.
    """

    #: the provider's registered name
    name: ClassVar[str]
    #: the environment variable holding the API key by default
    default_api_key_env: ClassVar[str]
    #: the environment variable naming the base URL by default
    default_base_url_env: ClassVar[str]
    #: the public API's base URL, when neither the endpoint nor the environment gives one
    default_base_url: ClassVar[str]

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    @property
    def base_url(self) -> str:
        """The base URL calls go to (the endpoint's, the environment's or the default)."""
        return self.endpoint.base_url or os.environ.get(self.default_base_url_env) or self.default_base_url

    def api_key(self) -> str | None:
        """The API key from the environment, or None when the variable is unset."""
        return os.environ.get(self.endpoint.api_key_env or self.default_api_key_env) or None

    @abc.abstractmethod
    async def complete(self, request: LLMRequest, on_event: EventSink | None = None) -> LLMResponse:
        """Call the model once.

        Args:
            request: the call (``request.stream`` streams it).
            on_event: told of each ``TextDelta`` and ``ToolCallEvent`` as they arrive
                (streaming), or of the whole text and the calls at the end (not streaming).

        Returns:
            The model's answer, with its usage.

        Raises:
            LLMError: a subclass saying whether a retry may help (``RateLimitError`` with
                ``retry_after_s``, ``ProviderUnavailableError``, ``ProviderRequestError``,
                ``ProviderResponseError``).
        """

    async def embed(self, texts: list[str], model: str) -> list[list[float]]:
        """Embeddings of ``texts`` from the provider's embeddings endpoint (one vector per
        text, in order); the semantic response cache uses them.

        Raises:
            ProviderRequestError: the provider has no embeddings endpoint (the default).
            LLMError: the call failed.
        """
        from namu.errors import ProviderRequestError

        raise ProviderRequestError(f"provider {self.name!r} has no embeddings endpoint", provider=self.name, model=model)

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the client's connections."""


#: provider name -> "module:Class", imported on first use
_PROVIDERS: dict[str, str] = {
    "anthropic": "namu.runtime.llm.anthropic:AnthropicProvider",
    "openai": "namu.runtime.llm.openai:OpenAIProvider",
}
_clients: dict[tuple[Endpoint, int], Provider] = {}
_clients_lock = threading.Lock()


def register_provider(name: str, target: str) -> None:
    """Register the :class:`Provider` subclass ``target`` (``"module:Class"``) as ``name``."""
    _PROVIDERS[name] = target


def provider_names() -> list[str]:
    """The registered provider names, sorted (nothing is imported)."""
    return sorted(_PROVIDERS)


def provider_class(name: str) -> type[Provider]:
    """The :class:`Provider` subclass registered as ``name``.

    Raises:
        AgentSpecError: no provider is registered under ``name``.
    """
    try:
        target = _PROVIDERS[name]
    except KeyError:
        raise AgentSpecError(f"unknown LLM provider {name!r}; known: {', '.join(provider_names())}") from None
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        raise AgentSpecError(f"the {name} provider needs the package {exc.name!r}: pip install 'namu[agents]'") from None


def provider_for(endpoint: Endpoint) -> Provider:
    """The client of ``endpoint`` for the running event loop, made on first use and kept,
    so every call of a process on one loop shares its connection pool."""
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    key = (endpoint, loop_id)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = provider_class(endpoint.provider)(endpoint)
    return client

