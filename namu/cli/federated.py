"""``namu federated server`` / ``namu federated client``: one federated program, across processes."""

from __future__ import annotations

from typing import Any

import click

from namu.cli.errors import EXIT_OK, EXIT_RUN_FAILED, fail, first_line
from namu.cli.execute import run_command
from namu.cli.targets import target_artifact

__all__ = ["federated_group"]

#: ``namu run`` options that concern agents only
_AGENT_ONLY = {"stream": False, "overrides": (), "dry_run": False, "session": None, "history": None}


@click.group("federated", short_help="Run a federated program's server or one of its clients.")
def federated_group() -> None:
    """Run a federated program (docs/federated.md) across processes: one server, any
    number of clients, over gRPC. Every process installs its partition of the same
    artifact; a client whose artifact differs is refused.

    \b
    Examples:
      namu compile examples/federated/fedavg_digits.py -o fedavg.onnx
      namu federated server fedavg.onnx --listen 127.0.0.1:50051 -i rounds=20 --json
      namu federated client fedavg.onnx --server 127.0.0.1:50051 --peer 3

    Without these commands, `namu run` runs the whole federation in one process.
    """


def _server(listen: str, **kwargs: Any) -> int:
    """Run the program's server partition; its remote fan-outs go to clients over gRPC.

    The server listens on --listen and runs the workflow as `namu run` does (same
    inputs, --json, --checkpoint, ...); each round's requests go to the clients its
    fan-out names, which connect with `namu federated client`. A client not connected
    yet is asked again (with backoff) until the round's deadline; the round then closes
    with the answers it has (at least min_replies, else the run fails naming the
    missing peers). At the end every client is told the run is over. The port listened
    on is printed on stderr (`--listen 127.0.0.1:0` picks a free one).

    \b
    Examples:
      namu federated server fedavg.onnx -i rounds=20 --json
      namu federated server fedavg.onnx --listen 0.0.0.0:50051 --checkpoint server.ckpt
    """
    from namu.federated.grpc_wire import GrpcFederation
    from namu.runtime.federation import use_federation

    host = listen.rsplit(":", 1)[0] if ":" in listen else ""
    if not host or not listen.rsplit(":", 1)[1].isdigit():
        fail(f"--listen needs HOST:PORT, got {listen!r}")

    def listening(port: int) -> None:
        click.echo(f"namu federated server: listening on {host}:{port}", err=True)

    try:
        factory = GrpcFederation.factory(listen, on_listen=listening)
        with use_federation(factory):
            return run_command.callback(**_AGENT_ONLY, **kwargs)  # type: ignore[misc]
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc}")


server_command = click.Command(
    "server",
    callback=_server,
    params=[
        click.Option(["--listen"], default="127.0.0.1:50051", show_default=True, metavar="HOST:PORT",
                     help="Where clients connect (port 0: a free one, printed on stderr)."),
        click.Argument(["target"], metavar="(FILE.py[:WORKFLOW] | ART.onnx)"),
        *[p for p in run_command.params if p.name not in _AGENT_ONLY and p.name != "target"],
    ],
    help=_server.__doc__,
    short_help="Run the server partition; clients connect over gRPC.",
)
federated_group.add_command(server_command)


@federated_group.command("client", short_help="Serve one peer of a federated program.")
@click.argument("target", metavar="(FILE.py[:WORKFLOW] | ART.onnx)")
@click.option("--server", "address", default="127.0.0.1:50051", show_default=True, metavar="HOST:PORT",
              help="The server's address.")
@click.option("--peer", required=True, metavar="ID", help="This peer's id: the fan-out item that names it (e.g. 3).")
@click.option("--placement", default=None, metavar="NAME",
              help="The peer class to serve (default: the program's only one, e.g. client).")
@click.option("--retry-for", "retry_for_s", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="How long to keep reconnecting while the server is away.")
def client_command(target: str, address: str, peer: str, placement: str | None, retry_for_s: float) -> int:
    """Serve one peer: join the server, run this peer's part of each round, answer.

    The peer installs its partition of TARGET (compiled now from a .py file, or a saved
    artifact) and serves requests until the server says the run is over. If the server
    goes away it reconnects, for up to --retry-for seconds, so a restarted server finds
    its clients again. A peer whose artifact differs from the server's is refused and
    exits with code 1.

    \b
    Examples:
      namu federated client fedavg.onnx --peer 3
      namu federated client examples/federated/fedavg_digits.py --peer 0 --server 10.0.0.5:50051
    """
    from namu.federated.grpc_wire import run_client
    from namu.federated.node import FederationError
    from namu.runtime.federation import artifact_digest

    art = target_artifact(target)
    handlers = art.handler_placements()
    if not handlers:
        fail(f"{target} is not a federated program: it has no fan-out placed at a peer class")
    if placement is None:
        if len(handlers) > 1:
            fail(f"{target} serves several peer classes ({', '.join(handlers)}): choose one with --placement")
        placement = handlers[0]
    elif placement not in handlers:
        fail(f"{target} has no peer class {placement!r} (it has: {', '.join(handlers)})")
    try:
        answered = run_client(address, peer, art.handlers(placement), artifact_digest(art.model), retry_for_s=retry_for_s)
    except FederationError as exc:
        fail(first_line(exc), EXIT_RUN_FAILED)
    click.echo(f"namu federated client: peer {peer} answered {answered} request{'s' * (answered != 1)}", err=True)
    return EXIT_OK
