"""`purechat serve` and `purechat join`: parse options, build the parts, run them."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn

import anyio
import anyio.abc
from google.protobuf.message import Message

from purechat import __version__
from purechat.client.admin import AdminError, print_members, print_rooms
from purechat.client.admin import call as admin_call
from purechat.client.display import Shown
from purechat.client.interactive import run_interactive
from purechat.client.pipe import Output, run_pipe
from purechat.client.session import Address, ChatSession
from purechat.core import Limits
from purechat.logs import configure as configure_logging
from purechat.ops.metrics import MetricsPortError
from purechat.options import serve_problem, takes
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ChatServer, ServeError, ServerConfig
from purechat.server.auth import TokenBook, TokenFileError
from purechat.settings import SettingsError, config_path, defaults_from
from purechat.store import DEFAULT_HISTORY, DEFAULT_STORE_URL, StoreError, open_store
from purechat.tls import TlsSetupError, client_context, server_context
from purechat.transport import TransportLimits
from purechat.web.listener import WebPortError
from purechat.web.origin import OriginError, allowed_origins


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, serve = _parser()
    if argv[:1] == ["serve"]:
        try:
            serve.set_defaults(**defaults_from(serve, config_path(argv[1:])))
        except SettingsError as error:
            print(f"purechat: {error}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = _Parser(prog="purechat", description="A chat server and terminal client over gRPC.")
    parser.add_argument("--version", action="version", version=f"purechat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run a chat server",
        description="Run a chat server. Clients of the original chat.ChatService contract "
        "land in room lobby; purechat clients choose their room. Every option can also be "
        "set in a TOML file (--config; keys named like the options) or as PURECHAT_<NAME> "
        "(e.g. PURECHAT_RATE_LIMIT=5); the command line wins, then the environment.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML file of settings")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=int, default=50051, help=f"port to listen on: {takes('port')}"
    )
    serve.add_argument(
        "--max-text",
        type=int,
        default=Limits().max_text_bytes,
        help=f"longest message text: {takes('max_text')}",
    )
    serve.add_argument(
        "--store",
        default=DEFAULT_STORE_URL,
        metavar="URL",
        help="where history is kept: sqlite:///PATH (relative; sqlite:////PATH for an "
        "absolute path), memory://, or redis://HOST:PORT[/DB] (rediss:// for TLS) to run "
        "several servers as one chat",
    )
    serve.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        metavar="N",
        help=f"messages kept per room by the memory:// and redis:// stores: {takes('history')}",
    )
    limits, transport = Limits(), TransportLimits()
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve TLS with this cert")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's key")
    serve.add_argument(
        "--tokens",
        type=Path,
        metavar="FILE",
        help="require a bearer token on every call; FILE has a 'TOKEN NAME' pair per line "
        "and is read again on SIGHUP",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=limits.rate_limit,
        metavar="N",
        help=f"messages a second per member, bursts of 2N: {takes('rate_limit')}",
    )
    serve.add_argument(
        "--max-message-bytes",
        type=int,
        default=transport.max_message_bytes,
        metavar="N",
        help=f"largest gRPC message accepted: {takes('max_message_bytes')}",
    )
    serve.add_argument(
        "--max-members-per-room",
        type=int,
        default=limits.max_members_per_room,
        metavar="N",
        help=f"members one room may have: {takes('max_members_per_room')}",
    )
    serve.add_argument(
        "--max-conns-per-addr",
        type=int,
        default=ServerConfig.max_conns_per_addr,
        metavar="N",
        help=f"connections one client address may hold: {takes('max_conns_per_addr')}",
    )
    serve.add_argument(
        "--handshake-timeout",
        type=float,
        default=transport.handshake_timeout,
        metavar="SECONDS",
        help="time a new connection has to finish TLS and HTTP/2 and make its first call: "
        + takes("handshake_timeout"),
    )
    serve.add_argument(
        "--keepalive",
        type=float,
        default=ServerConfig.keepalive_idle,
        metavar="SECONDS",
        help="ping connections silent this long; drop those that do not answer: "
        + takes("keepalive"),
    )
    serve.add_argument(
        "--slow-member-timeout",
        type=float,
        default=ServerConfig.slow_member_timeout,
        metavar="SECONDS",
        help="remove a member whose backlog makes no progress for this long (it stopped "
        "reading); a member that keeps reading is never removed for its speed",
    )
    serve.add_argument(
        "--slow-member-bytes",
        type=int,
        default=ServerConfig.slow_member_bytes,
        metavar="BYTES",
        help="remove a member whose backlog passes this many bytes (it reads far slower "
        "than its room); when most of a room is an eighth of this behind, senders are "
        "slowed instead",
    )
    serve.add_argument(
        "--presence-ttl",
        type=float,
        default=ServerConfig.presence_ttl,
        metavar="SECONDS",
        help="with redis://: how long the others list a server's members after it stops "
        f"without a word: {takes('presence_ttl')}",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (off unless set): "
        + takes("metrics_port"),
    )
    serve.add_argument(
        "--web-port",
        type=int,
        metavar="PORT",
        help="serve the chat's web page at http://HOST:PORT/ (https with --tls-cert), "
        "its members in the same rooms as everyone's (off unless set): " + takes("web_port"),
    )
    serve.add_argument(
        "--web-origin",
        action="append",
        metavar="ORIGIN",
        help="a page origin (scheme://host[:port]) besides the web page's own allowed to "
        "open chat sessions, e.g. behind a proxy with another name; repeatable",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log (to stderr)",
    )
    serve.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="log line format"
    )
    serve.set_defaults(run=_serve)

    join = commands.add_parser(
        "join",
        help="chat in a room",
        description="Chat in a room. In a terminal: a line editor, with the room above it "
        "(/help lists the commands). With stdin not a terminal: every input line is one "
        "message, every event one output line; exits 0 once the server has accepted "
        "every line, 1 with the reason on stderr when it cannot deliver them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_connection_options(join)
    join.add_argument("--name", default=_login_name(), help="the name you ask for")
    join.add_argument("--room", default="lobby", help="room to join")
    join.add_argument(
        "--history", type=int, default=20, metavar="N", help="recent messages to show"
    )
    join.add_argument("--json", action="store_true", help="pipe mode: one JSON object per line")
    join.add_argument(
        "--listen", action="store_true", help="ignore stdin; print events until interrupted"
    )
    join.add_argument(
        "--give-up-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="pipe mode: fail when the server stays unreachable this long",
    )
    join.set_defaults(run=_join)

    for name, summary, run in (
        ("rooms", "list a running server's rooms", _rooms),
        ("who", "list the members of a room on a running server", _who),
    ):
        admin = commands.add_parser(name, help=summary, description=summary.capitalize() + ".")
        if name == "who":
            admin.add_argument("room", help="room whose members to list")
        _add_connection_options(admin)
        admin.set_defaults(run=run)
    return parser, serve


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line rather than the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} ({self.prog} --help lists the options)\n")


def _add_connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--server", default="127.0.0.1:50051", help="server address, HOST:PORT")
    command.add_argument("--tls", action="store_true", help="use TLS, trusting the system's roots")
    command.add_argument(
        "--tls-ca", type=Path, metavar="FILE", help="use TLS, trusting this certificate authority"
    )
    # No default here: --help would show it (the token itself) after the help text.
    command.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="bearer token for servers that require one (default: $PURECHAT_TOKEN)",
    )


def _admin(args: argparse.Namespace, method: str, request: Message, reply: type[Message]) -> int:
    try:
        address = Address.parse(args.server)
        tls = client_context(args.tls_ca) if (args.tls or args.tls_ca) else None
        answer = anyio.run(
            partial(
                admin_call, address, method, request, reply, ssl_context=tls, token=_token(args)
            ),
            backend="trio",
        )
    except (ValueError, TlsSetupError, AdminError) as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    (print_rooms if method == "ListRooms" else print_members)(answer)
    return 0


def _token(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get("PURECHAT_TOKEN")


def _rooms(args: argparse.Namespace) -> int:
    return _admin(args, "ListRooms", v1.ListRoomsRequest(), v1.ListRoomsResponse)


def _who(args: argparse.Namespace) -> int:
    return _admin(
        args, "ListMembers", v1.ListMembersRequest(room=args.room), v1.ListMembersResponse
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "guest"


def _join(args: argparse.Namespace) -> int:
    try:
        address = Address.parse(args.server)
    except ValueError as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 2
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not (args.listen or args.json)
    try:
        tls = client_context(args.tls_ca) if (args.tls or args.tls_ca) else None
    except TlsSetupError as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 2
    shown_send, shown = anyio.create_memory_object_stream[Shown](256)
    session = ChatSession(
        address,
        args.name,
        args.room,
        shown_send,
        history=max(0, args.history),
        give_up_after=None if interactive or args.listen else args.give_up_after,
        ssl_context=tls,
        token=_token(args),
    )

    async def main() -> int:
        with shown_send:
            if interactive:
                return await run_interactive(session, shown)
            output = Output(sys.stdout, sys.stderr, as_json=args.json)
            return await run_pipe(session, shown, output, listen=args.listen)

    try:
        return anyio.run(main, backend="trio")
    except KeyboardInterrupt:
        return 0 if interactive or args.listen else 130


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    try:
        config = _server_config(args)
    except (ServeError, TlsSetupError, TokenFileError, OriginError) as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    failures: list[Exception] = []
    try:
        anyio.run(_serve_until_signalled, config, args.store, args.history, backend="trio")
    except* (ServeError, StoreError, MetricsPortError, WebPortError) as group:
        failures.extend(_leaves(group))
    for failure in failures:
        print(f"purechat: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    """The errors in a group, however deeply task groups nested it."""
    found: list[Exception] = []
    for error in group.exceptions:
        found += _leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
    return found


def _server_config(args: argparse.Namespace) -> ServerConfig:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ServeError("--tls-cert and --tls-key go together")
    if problem := serve_problem(args):
        raise ServeError(problem)
    limits = Limits(
        max_text_bytes=args.max_text,
        rate_limit=max(0.0, args.rate_limit),
        max_members_per_room=args.max_members_per_room,
    )
    return ServerConfig(
        host=args.host,
        port=args.port,
        limits=limits,
        transport=TransportLimits(
            max_message_bytes=args.max_message_bytes, handshake_timeout=args.handshake_timeout
        ),
        ssl_context=server_context(args.tls_cert, args.tls_key) if args.tls_cert else None,
        tokens=TokenBook(args.tokens, limits) if args.tokens else None,
        max_conns_per_addr=max(0, args.max_conns_per_addr),
        keepalive_idle=args.keepalive,
        presence_ttl=max(0.1, args.presence_ttl),
        slow_member_timeout=args.slow_member_timeout,
        slow_member_bytes=args.slow_member_bytes,
        metrics_port=args.metrics_port,
        web_port=args.web_port,
        web_ssl_context=(
            server_context(args.tls_cert, args.tls_key, alpn="http/1.1")
            if args.tls_cert and args.web_port is not None
            else None
        ),
        web_origins=allowed_origins(args.web_origin or []),
    )


async def _serve_until_signalled(config: ServerConfig, store_url: str, history: int) -> None:
    store = await open_store(store_url, history=history)
    try:
        await _serve_with(ChatServer(config, store))
    finally:
        await store.aclose()


async def _serve_with(server: ChatServer) -> None:
    async def stop_on_signal(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if server.config.tokens is not None:
                        server.config.tokens.reload()
                    continue
                logging.getLogger("purechat.server").info(
                    "%s received: shutting down", signal.Signals(signum).name
                )
                server.shutdown()
                return

    async with anyio.create_task_group() as task_group:
        await task_group.start(stop_on_signal)
        port = await task_group.start(server.serve)
        print(
            f"purechat listening on {Address(server.config.host, port)}; "
            f"history kept in {server.store.description}",
            flush=True,
        )
        if server.web_port is not None:
            scheme = "https" if server.config.web_ssl_context else "http"
            print(
                f"purechat web page at {scheme}://{_url_host(server.config.host)}:{server.web_port}/",
                flush=True,
            )
        await server.stopped()
        task_group.cancel_scope.cancel()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())
