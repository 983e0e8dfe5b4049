"""The ``http`` tool: HTTP requests to the hosts an agent file allows, and no others.

Tool ``http_request`` (``prefix`` + ``http_request``), input ``{url, method?, headers?,
body?}``; the answer is the status line, the ``content-type`` (and ``location``) header,
a blank line and the body as text.

* **Hosts**: a URL's host must be one of ``allowed_hosts`` exactly (case aside); an entry
  with a port (``127.0.0.1:8080``) allows only that port, one without allows any.
  ``localhost`` and ``127.0.0.1`` are different hosts. Only ``http`` and ``https``.
* **Redirects** are followed one hop at a time (at most ``max_redirects``), and each
  hop's URL is checked before it is requested: a redirect to a host not allowed is
  refused, and nothing is sent to that host. Past ``max_redirects`` the redirect
  response itself is the answer.
* **Methods**: only ``methods`` (default ``GET``).
* **Size**: the body is read as a stream and reading stops at ``max_response_bytes``:
  the answer then has the first ``max_response_bytes`` bytes and a note that the body
  was truncated (the model still gets the start of a long page).
* **Time**: ``timeout_s`` bounds connecting, each read and each write (httpx's timeout),
  as well as the whole call (the agent's limit on every tool).

A refused host, method or URL is a :class:`~namu.errors.ToolError` naming what is
allowed; a failed request (refused connection, timeout) raises httpx's own error, which
the agent reports to the model as an error result.

In an agent file::

    tools:
      - http: {allowed_hosts: [api.example.com, "127.0.0.1:8080"], methods: [GET, POST]}
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from namu.errors import ToolError
from namu.runtime.tools._typed import ToolInput, TypedTool
from namu.runtime.tools.base import Tool, ToolKit, ToolOptions

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpKit", "HttpOptions"]

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: an ``allowed_hosts`` entry: a host name or IPv4 address, or a bracketed IPv6 address,
#: with an optional port
_HOST_ENTRY = re.compile(r"^(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<host>[^\s:/\[\]@]+))(?::(?P<port>\d{1,5}))?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: the response headers an answer shows
_SHOWN_HEADERS = ("content-type", "location")


class HttpOptions(ToolOptions):
    """Options of the ``http`` tool."""

    allowed_hosts: list[str] = Field(
        min_length=1,
        description="The hosts requests may go to, matched exactly: 'api.example.com' (any port) or "
        "'127.0.0.1:8080' (that port only); '[::1]:8080' for IPv6. Redirects are checked too.",
    )
    methods: list[Method] = Field(["GET"], min_length=1, description="The HTTP methods the model may use.")
    max_response_bytes: int = Field(
        1 << 20,
        gt=0,
        description="The most bytes of a response body returned; a longer body is cut there, and the answer says so.",
    )
    max_redirects: int = Field(5, ge=0, description="The most redirects followed, each to an allowed host only.")
    prefix: str = Field(
        "",
        pattern=r"^[a-zA-Z0-9_-]{0,40}$",
        description="Put before the tool name (github_ gives github_http_request), to use several http "
        "entries together.",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        for entry in hosts:
            _parse_host(entry)
        return hosts


def _parse_host(entry: str) -> tuple[str, int | None]:
    """``(host, port or None)`` of an ``allowed_hosts`` entry, the host lowercased.

    Raises:
        ValueError: ``entry`` is not ``host``, ``host:port`` or ``[ipv6]:port``.
    """
    match = _HOST_ENTRY.match(entry)
    if match is None or (match["port"] and not 0 < int(match["port"]) < 65536):
        raise ValueError(f"{entry!r} is not a host or host:port")
    return (match["ipv6"] or match["host"]).lower(), int(match["port"]) if match["port"] else None


class HttpRequestInput(ToolInput):
    url: str = Field(description="The absolute http or https URL.")
    method: str = Field("GET", description="The HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    body: str | None = Field(None, description="The request body, as text (set content-type in headers).")


class HttpRequestTool(TypedTool):
    """``http_request``: one request (and its allowed redirects) through ``client``."""

    def __init__(self, options: HttpOptions, client: httpx.AsyncClient) -> None:
        super().__init__(
            options.prefix + "http_request",
            f"Make an HTTP request and get the status, content type and body (at most "
            f"{options.max_response_bytes} bytes). Allowed hosts: {', '.join(options.allowed_hosts)}. "
            f"Allowed methods: {', '.join(options.methods)}.",
            HttpRequestInput,
            options.timeout_s,
        )
        self.options = options
        self.client = client
        self.rules = [_parse_host(entry) for entry in options.allowed_hosts]

    async def run(self, arguments: HttpRequestInput) -> str:
        import httpx

        method = arguments.method.upper()
        if method not in self.options.methods:
            raise ToolError(f"method {method} is not allowed; allowed methods: {', '.join(self.options.methods)}")
        try:
            url = httpx.URL(arguments.url)
        except httpx.InvalidURL as exc:
            raise ToolError(f"invalid URL {arguments.url!r}: {exc}") from None
        self._check(url)
        try:
            request = self.client.build_request(method, url, headers=arguments.headers, content=arguments.body)
        except ValueError as exc:  # a header that is not ASCII
            raise ToolError(f"invalid request: {exc}") from None
        hops = 0
        while True:
            try:
                response = await self.client.send(request, stream=True)
            except httpx.LocalProtocolError as exc:  # a header with a newline, ... (nothing was sent)
                raise ToolError(f"invalid request: {exc}") from None
            try:
                following = response.next_request
                if following is None or hops == self.options.max_redirects:
                    return await self._answer(response)
                self._check(following.url, redirect_from=str(request.url))
            finally:
                await response.aclose()
            request = following
            hops += 1

    def _check(self, url: httpx.URL, *, redirect_from: str = "") -> None:
        """Refuse ``url`` unless its scheme is http(s) and its host (and port) allowed."""
        context = f" (a redirect from {redirect_from})" if redirect_from else ""
        if url.scheme not in _DEFAULT_PORTS or not url.host:
            raise ToolError(f"{str(url)!r}{context} is not an absolute http or https URL")
        host = url.host.lower()
        port = url.port or _DEFAULT_PORTS[url.scheme]
        if not any(host == allowed and allowed_port in (None, port) for allowed, allowed_port in self.rules):
            shown = f"[{host}]" if ":" in host else host
            raise ToolError(
                f"host {shown}:{port}{context} is not allowed; allowed hosts: {', '.join(self.options.allowed_hosts)}"
            )

    async def _answer(self, response: httpx.Response) -> str:
        """The status, a few headers and the body, read up to ``max_response_bytes``."""
        limit = self.options.max_response_bytes
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                del body[limit:]
                truncated = True
                break
        lines = [f"HTTP {response.status_code} {response.reason_phrase}"]
        lines += [f"{name}: {response.headers[name]}" for name in _SHOWN_HEADERS if name in response.headers]
        if b"\0" in body[:8192]:
            text = f"[{len(body)} bytes of binary content not shown]"
        else:
            text = body.decode(response.encoding or "utf-8", errors="replace")
        if truncated:
            text += f"\n[truncated: the body is longer than {limit} bytes; only the first {limit} are shown]"
        return "\n".join(lines) + "\n\n" + text


class HttpKit(ToolKit):
    """Provides ``http_request``; one connection pool per entry, closed by :meth:`aclose`."""

    options: HttpOptions

    def __init__(self, options: HttpOptions, base_dir: str) -> None:
        super().__init__(options, base_dir)
        self._client: httpx.AsyncClient | None = None

    async def tools(self) -> list[Tool]:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.options.timeout_s, follow_redirects=False)
        return [HttpRequestTool(self.options, self._client)]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
