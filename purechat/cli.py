"""`purechat`: the server command here (parse options, build the parts, run them); the
client's commands in client/commands.py."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import anyio
import anyio.abc

from purechat import __version__
from purechat.account import add_account_command
from purechat.app import ChatServer
from purechat.client.commands import add_client_commands
from purechat.client.manage import add_manage_commands
from purechat.client.read_commands import add_read_commands
from purechat.client.session import Address
from purechat.core import Limits
from purechat.core.moderation import format_duration
from purechat.core.names import name_key, name_problem
from purechat.logs import configure as configure_logging
from purechat.ops.metrics import MetricsPortError
from purechat.options import DURATIONS, duration, serve_problem, takes
from purechat.server import ServeError, ServerConfig
from purechat.server.auth import TokenBook, TokenFileError
from purechat.server.identity import DEFAULT_SESSION_TTL, AccountsConfig
from purechat.settings import SettingsError, config_path, defaults_from
from purechat.store import DEFAULT_HISTORY, DEFAULT_STORE_URL, StoreError, open_store
from purechat.tls import TlsSetupError, server_context
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


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, where it has one: an option off unless
    given (--tls-cert, --web-port) says so in its help rather than "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


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
        formatter_class=_Defaults,
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
        "absolute path), memory://, or redis://HOST:PORT[/DB] (rediss:// for TLS) or "
        "redis+cluster://HOST:PORT[,HOST:PORT...] (rediss+cluster://) to run several servers "
        "as one chat; ?replicas=N acknowledges a message once N replicas have it",
    )
    serve.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        metavar="N",
        help="messages kept per room by the memory:// and redis:// stores (a Redis log keeps "
        f"at least 4096): {takes('history')}",
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
        "--guests",
        choices=["allow", "deny"],
        help="whether people without an account (or a token) may join (default: allow, "
        "or deny when --tokens is given)",
    )
    serve.add_argument(
        "--registration",
        choices=["open", "closed"],
        default="closed",
        help="whether anyone may register an account (a few per address an hour); closed: "
        "accounts are added with `purechat account add`",
    )
    serve.add_argument(
        "--admin",
        action="append",
        metavar="NAME",
        help="an account that administers the server (every room's rights, bans of "
        "addresses, sessions); repeatable (in a --config file: a list)",
    )
    serve.add_argument(
        "--session-ttl",
        type=duration,
        default=format_duration(DEFAULT_SESSION_TTL),
        metavar="DURATION",
        help=f"how long a login lasts before it must be made again: {DURATIONS}",
    )
    serve.add_argument(
        "--edit-window",
        type=duration,
        default=format_duration(limits.edit_window),
        metavar="DURATION",
        help="how long after sending an account may still edit its message: " + DURATIONS,
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
        help="connections one client address may hold, on the gRPC and web ports together "
        f"(and as many on the metrics port): {takes('max_conns_per_addr')}",
    )
    serve.add_argument(
        "--handshake-timeout",
        type=float,
        default=transport.handshake_timeout,
        metavar="SECONDS",
        help="time a new connection has to finish TLS and HTTP/2 and make its first call "
        "(on the web and metrics ports: to send each whole request): " + takes("handshake_timeout"),
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
        "than its room); when most of a room is 1/64 of this behind, senders are "
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

    add_client_commands(commands)
    add_read_commands(commands)
    add_manage_commands(commands)
    add_account_command(commands)
    return parser, serve


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line rather than the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} ({self.prog} --help lists the options)\n")


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    try:
        config = _server_config(args)
    except (ServeError, TlsSetupError, TokenFileError, OriginError) as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    _collect_garbage_less_often()
    failures: list[Exception] = []
    try:
        anyio.run(_serve_until_signalled, config, args.store, args.history, backend="trio")
    except* (ServeError, StoreError, MetricsPortError, WebPortError) as group:
        failures.extend(_leaves(group))
    for failure in failures:
        print(f"purechat: {failure}", file=sys.stderr)
    return 1 if failures else 0


# A server allocates a handful of objects per frame and per member, and keeps most of
# what it allocates (connections, members): at Python's default of 700 allocations per
# young collection, collections took about a third of the time members spent joining
# (2,000 grpc-go members: 370 joins/s, 650 at this threshold). The older generations
# keep their defaults, so a full collection still follows the heap's growth.
YOUNG_COLLECTION_THRESHOLD = 50_000


def _collect_garbage_less_often() -> None:
    """Make young garbage collections rarer for a long-running server (see above)."""
    gc.freeze()  # what start-up made (modules, config) is never garbage: skip it
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


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
        edit_window=max(0.0, args.edit_window),
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
        accounts=_accounts_config(args, limits),
    )


def _accounts_config(args: argparse.Namespace, limits: Limits) -> AccountsConfig:
    """--guests, --registration, --admin and --session-ttl; ServeError for an admin
    that is not a name."""
    for admin in args.admin or []:
        if not admin or (problem := name_problem(admin, limits)):
            raise ServeError(f"--admin {admin!r} is not a name: {problem or 'it is empty.'}")
    return AccountsConfig(
        guests=None if args.guests is None else args.guests == "allow",
        registration=args.registration == "open",
        admins=frozenset(name_key(admin) for admin in args.admin or []),
        session_ttl=args.session_ttl,
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
