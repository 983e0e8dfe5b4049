"""The ``http`` tool against real HTTP servers on loopback: allowed hosts answer, refused
hosts (and redirects to them) never receive a request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from pydantic import ValidationError

from namu.errors import ToolError
from namu.runtime.tools.base import tool_kit_class, tool_options_class


class Server(ThreadingHTTPServer):
    """A loopback HTTP server recording every request it gets."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: the tool hangs up on purpose (a capped body, a timeout)."""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _handle(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, url.path, dict(self.headers), body))
        query = parse_qs(url.query)
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("location", query["to"][0])
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if url.path == "/slow":
            time.sleep(2)
        content_type = "text/plain; charset=utf-8"
        if url.path == "/big":
            payload = b"x" * 100_000
        elif url.path == "/binary":
            payload, content_type = b"\x89PNG\x00\x00data", "image/png"
        elif url.path == "/latin1":
            payload, content_type = "café".encode("latin-1"), "text/plain; charset=latin-1"
        elif url.path == "/echo":
            payload = f"{self.command} {body.decode()} {self.headers.get('x-token')}".encode()
        else:
            payload = b"hello"
        self.send_response(404 if url.path == "/missing" else 200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """Two loopback servers on two ports: the allowed one and the refused one."""
    allowed, refused = Server(), Server()
    yield allowed, refused
    allowed.stop()
    refused.stop()


@pytest.fixture
def allowed(servers: tuple[Server, Server]) -> Server:
    servers[0].requests.clear()
    return servers[0]


@pytest.fixture
def refused(servers: tuple[Server, Server]) -> Server:
    servers[1].requests.clear()
    return servers[1]


def request(options: dict[str, Any], **arguments: Any) -> str:
    """One call of the ``http_request`` tool made from ``options``."""

    async def run() -> str:
        kit = tool_kit_class("http")(tool_options_class("http")(**options), ".")
        try:
            (tool,) = await kit.tools()
            return await tool.call(arguments)
        finally:
            await kit.aclose()

    return asyncio.run(run())


def test_allowed_host(allowed: Server) -> None:
    answer = request({"allowed_hosts": [allowed.host]}, url=f"{allowed.origin}/hello?q=1")
    assert answer == "HTTP 200 OK\ncontent-type: text/plain; charset=utf-8\n\nhello"
    assert [(method, path) for method, path, _, _ in allowed.requests] == [("GET", "/hello")]


def test_a_host_without_a_port_allows_every_port(allowed: Server, refused: Server) -> None:
    assert request({"allowed_hosts": ["127.0.0.1"]}, url=f"{refused.origin}/hello").endswith("hello")
    assert len(refused.requests) == 1


def test_spec_and_options(allowed: Server) -> None:
    options = tool_options_class("http")(allowed_hosts=[allowed.host], methods=["GET", "POST"], prefix="api_", timeout_s=4)
    kit = tool_kit_class("http")(options, ".")
    (tool,) = asyncio.run(kit.tools())
    assert tool.name == "api_http_request"
    assert tool.timeout_s == 4
    assert allowed.host in tool.description and "GET, POST" in tool.description
    assert tool.input_schema["required"] == ["url"]
    assert set(tool.input_schema["properties"]) == {"url", "method", "headers", "body"}
    asyncio.run(kit.aclose())


@pytest.mark.parametrize(
    "url",
    [
        "{refused}/hello",  # another port of the same address
        "http://localhost:{port}/hello",  # another name of the same server
        "http://127.0.0.2:{port}/hello",
        "http://2130706433:{port}/hello",  # 127.0.0.1 as a number
    ],
)
def test_refused_host_gets_no_request(allowed: Server, refused: Server, url: str) -> None:
    url = url.format(refused=refused.origin, port=allowed.server_address[1])
    with pytest.raises(ToolError, match=rf"is not allowed; allowed hosts: {allowed.host}$"):
        request({"allowed_hosts": [allowed.host]}, url=url)
    assert allowed.requests == []
    assert refused.requests == []


def test_redirects_are_checked_at_every_hop(allowed: Server, refused: Server) -> None:
    options = {"allowed_hosts": [allowed.host]}
    inside = f"{allowed.origin}/redirect?to={allowed.origin}/redirect%3Fto%3D/hello"
    assert request(options, url=inside).endswith("\n\nhello")  # two hops, then the page
    assert [path for _, path, _, _ in allowed.requests] == ["/redirect", "/redirect", "/hello"]
    allowed.requests.clear()
    with pytest.raises(ToolError, match=rf"host 127.0.0.1:{refused.server_address[1]} \(a redirect from "):
        request(options, url=f"{allowed.origin}/redirect?to={refused.origin}/hello")
    assert refused.requests == []
    assert [path for _, path, _, _ in allowed.requests] == ["/redirect"]


def test_redirects_past_the_limit_are_answered_as_they_are(allowed: Server) -> None:
    answer = request({"allowed_hosts": [allowed.host], "max_redirects": 0}, url=f"{allowed.origin}/redirect?to=/hello")
    assert answer.startswith("HTTP 302 Found\n")
    assert "location: /hello" in answer
    assert [path for _, path, _, _ in allowed.requests] == ["/redirect"]


def test_methods(allowed: Server) -> None:
    with pytest.raises(ToolError, match="method POST is not allowed; allowed methods: GET$"):
        request({"allowed_hosts": [allowed.host]}, url=f"{allowed.origin}/echo", method="POST", body="x")
    assert allowed.requests == []
    options = {"allowed_hosts": [allowed.host], "methods": ["GET", "POST"]}
    answer = request(options, url=f"{allowed.origin}/echo", method="post", body="payload", headers={"X-Token": "t1"})
    assert answer.endswith("\n\nPOST payload t1")
    with pytest.raises(ToolError, match="method DELETE is not allowed; allowed methods: GET, POST$"):
        request(options, url=f"{allowed.origin}/echo", method="DELETE")


def test_response_size_cap(allowed: Server) -> None:
    answer = request({"allowed_hosts": [allowed.host], "max_response_bytes": 1000}, url=f"{allowed.origin}/big")
    _, _, body = answer.partition("\n\n")
    text, _, note = body.partition("\n[truncated")
    assert text == "x" * 1000
    assert note == ": the body is longer than 1000 bytes; only the first 1000 are shown]"


def test_bodies_as_text(allowed: Server) -> None:
    options = {"allowed_hosts": [allowed.host], "methods": ["GET", "HEAD"]}
    assert request(options, url=f"{allowed.origin}/latin1").endswith("\n\ncafé")
    assert request(options, url=f"{allowed.origin}/binary").endswith("\n\n[10 bytes of binary content not shown]")
    assert request(options, url=f"{allowed.origin}/missing").startswith("HTTP 404 Not Found\n")
    assert request(options, url=f"{allowed.origin}/hello", method="HEAD").endswith("\n\n")


def test_timeout(allowed: Server) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        request({"allowed_hosts": [allowed.host], "timeout_s": 0.3}, url=f"{allowed.origin}/slow")
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/x", "is not an absolute http or https URL"),
        ("file:///etc/passwd", "is not an absolute http or https URL"),
        ("127.0.0.1/hello", "is not an absolute http or https URL"),
        ("http:///hello", "is not an absolute http or https URL"),
        ("http://[::1/", "invalid URL"),
    ],
)
def test_bad_urls(allowed: Server, url: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        request({"allowed_hosts": [allowed.host, "127.0.0.1"]}, url=url)
    assert allowed.requests == []


def test_bad_input(allowed: Server) -> None:
    with pytest.raises(ToolError, match="url: Field required"):
        request({"allowed_hosts": [allowed.host]})
    with pytest.raises(ToolError, match="invalid request: Illegal header value"):
        request({"allowed_hosts": [allowed.host]}, url=f"{allowed.origin}/hello", headers={"x": "a\nb"})
    with pytest.raises(ToolError, match="invalid request: 'ascii' codec"):
        request({"allowed_hosts": [allowed.host]}, url=f"{allowed.origin}/hello", headers={"x": "é"})
    assert allowed.requests == []


def test_options_are_validated() -> None:
    options = tool_options_class("http")
    with pytest.raises(ValidationError, match="allowed_hosts"):
        options()
    with pytest.raises(ValidationError, match="at least 1 item"):
        options(allowed_hosts=[])
    for bad in ["http://example.com", "example.com/path", "host:99999", "a b", "[::1"]:
        with pytest.raises(ValidationError, match="is not a host or host:port"):
            options(allowed_hosts=[bad])
    with pytest.raises(ValidationError, match="methods"):
        options(allowed_hosts=["example.com"], methods=["FETCH"])
    assert options(allowed_hosts=["Example.com", "[::1]:8080", "127.0.0.1:80"]).methods == ["GET"]
