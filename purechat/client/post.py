"""`purechat post`: lines into a room (or a conversation: `to`) without a seat, each
stored once, in order.

Each line is one unary `Post` call with a client message id. A server that is away, or
could not tell whether it stored a line, is asked again with the same id (never stored
twice), with backoff, trying the next server when there are several, until
`give_up_after` seconds pass without progress. Nobody in the room sees a join or leave.
The server paces one connection's posts at its rate limit (each answer says the rate);
the poster says so once, through `notice`, when its lines begin to wait.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc

from purechat.client.calls import connect
from purechat.client.errors import (
    Failure,
    diagnose,
    failure_reason,
    failure_sentence,
    token_sentence,
)
from purechat.client.machine import FATAL, Backoff, pace_sentence
from purechat.client.session import Address
from purechat.core.ratelimit import TokenBucket
from purechat.errors import ClientError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import Status, StatusCode
from purechat.transport import Connection, GrpcProtocol, StreamGone, frame_message
from purechat.transport.protocol import CLIENT_LIMITS

TIMEOUT = 30.0
_HOPELESS = frozenset({Failure.UNTRUSTED, Failure.NAME_MISMATCH, Failure.EXPIRED, Failure.NOT_TLS})


class PostError(ClientError):
    """Not every line could be stored; str() says how many and why."""


@dataclass(frozen=True, slots=True)
class Posted:
    text: str
    seq: int
    name: str
    client_msg_id: str = ""


@dataclass
class Poster:
    addresses: Sequence[Address]
    room: str
    name: str
    give_up_after: float = 30.0
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None
    # The token is a session `purechat login` saved (a refusal says to log in again).
    token_saved: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    # A direct message to this account instead of `room` (accounts only).
    to: str = ""
    # Told once, when the server's rate limit starts to slow the posts (a sentence).
    notice: Callable[[str], None] = lambda sentence: None
    # The server's pace on the current connection, as its answers give the rate.
    _pace: TokenBucket | None = field(default=None, init=False)
    _told_pace: bool = field(default=False, init=False)

    async def post(
        self, lines: Sequence[str], *, action: bool = False, reply_to: int = 0
    ) -> list[Posted]:
        """Store lines in order (each answering message reply_to: 0 for none); PostError
        (saying which were not stored) otherwise."""
        done: list[Posted] = []
        attempt, next_address = 0, 0
        down_since: float | None = None
        pending = [(uuid.uuid4().hex, text) for text in lines]
        # Ids sent without a definite answer at least once: perhaps stored.
        maybe: set[str] = set()
        while pending:
            address = self.addresses[next_address % len(self.addresses)]
            try:
                done += await self._post_on(address, pending, action, reply_to)
                return done
            except _Retry as trouble:
                done += trouble.done
                pending = pending[len(trouble.done) :]
                if trouble.maybe:
                    maybe.add(pending[0][0])
                now = anyio.current_time()
                down_since = now if trouble.done or down_since is None else down_since
                if now - down_since >= self.give_up_after:
                    unsure = sum(1 for client_msg_id, _ in pending if client_msg_id in maybe)
                    raise PostError(_unposted(len(pending), unsure, trouble.reason)) from None
                next_address += 1
                delay = min(self.backoff.delay(attempt), down_since + self.give_up_after - now)
                attempt = 0 if trouble.done else attempt + 1
                await anyio.sleep(max(0.0, delay))
        return done

    async def _post_on(
        self, address: Address, pending: list[tuple[str, str]], action: bool, reply_to: int
    ) -> list[Posted]:
        done: list[Posted] = []
        try:
            sock = await connect(address.host, address.port, self.ssl_context)
        except (OSError, anyio.BrokenResourceError) as error:
            if diagnose(error).failure in _HOPELESS:
                raise PostError(failure_sentence(error, address.host, address.port)) from None
            reason = f"cannot reach the server at {address} ({failure_reason(error)})"
            raise _Retry(done, reason, maybe=False) from None
        # Raised outside the task group, so the caller gets the error, not a group of it.
        stopped: _Retry | PostError | None = None
        self._pace = None  # a new connection: the server paces it afresh
        async with anyio.create_task_group() as task_group:
            connection = Connection(sock, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
            await task_group.start(connection.run)
            try:
                for client_msg_id, text in pending:
                    self._taking_turn()
                    posted = await self._post_one(
                        connection, address, client_msg_id, text, action=action, reply_to=reply_to
                    )
                    done.append(posted)
            except (_Retry, PostError) as error:
                stopped = error
            finally:
                task_group.cancel_scope.cancel()
        if isinstance(stopped, _Retry):
            stopped.done = done
        if stopped is not None:
            raise stopped
        return done

    async def _post_one(
        self,
        connection: Connection,
        address: Address,
        client_msg_id: str,
        text: str,
        *,
        action: bool,
        reply_to: int = 0,
    ) -> Posted:
        metadata = [("authorization", f"Bearer {self.token}")] if self.token else []
        request = v1.PostRequest(
            room="" if self.to else self.room,
            name=self.name,
            text=text,
            client_msg_id=client_msg_id,
            action=action,
            to=self.to,
            reply_to=reply_to,
        )
        raw: bytes | None = None
        try:
            with anyio.fail_after(TIMEOUT):
                stream = connection.start_call(
                    "purechat.v1.Chat", "Post", authority=str(address), metadata=metadata
                )
                await stream.send_frames(frame_message(request.SerializeToString()))
                stream.close_send()
                raw = await stream.receive()
                while await stream.receive() is not None:
                    pass
        except TimeoutError:
            raise _Retry(
                [], f"the server at {address} did not answer in time", maybe=True
            ) from None
        except StreamGone as gone:
            raise _Retry([], _said(gone.status, address), maybe=True) from None
        status = stream.status or Status(StatusCode.UNAVAILABLE, "connection lost")
        if status.status_code is StatusCode.OK and raw is not None:
            answer = v1.PostResponse.FromString(raw)
            self._learned(answer.rate_limit)
            return Posted(text, answer.seq, answer.name, client_msg_id)
        if status.status_code is StatusCode.UNAUTHENTICATED:
            said = token_sentence(
                status.status_message or "",
                given=bool(self.token),
                server=str(address),
                saved=self.token_saved,
            )
            raise PostError(_sentence(said))
        if status.status_code in FATAL or status.status_code is StatusCode.UNIMPLEMENTED:
            raise PostError(_sentence(status.status_message or status.status_code.name))
        raise _Retry([], _said(status, address), maybe=True)

    def _learned(self, rate: float) -> None:
        """An answer said the server's rate: follow its bucket for this connection from
        here (it started full, and has just taken the post answered)."""
        if rate > 0 and self._pace is None:
            self._pace = TokenBucket.full(rate)
            self._pace.reserve(anyio.current_time())

    def _taking_turn(self) -> None:
        """A post is about to go: say once when it is the first the server holds back."""
        if self._pace is None:
            return
        if self._pace.reserve(anyio.current_time()) > 0 and not self._told_pace:
            self._told_pace = True
            self.notice(pace_sentence(self._pace.rate))


class _Retry(Exception):
    """This attempt failed in a way another may mend; `done` were stored before it."""

    def __init__(self, done: list[Posted], reason: str, *, maybe: bool):
        super().__init__(reason)
        self.done = done
        self.reason = reason
        # The failed line may have been stored (it was sent and not answered).
        self.maybe = maybe


def _said(status: Status, address: Address) -> str:
    return f"the server at {address} said: {status.status_message or status.status_code.name}"


def _unposted(pending: int, unsure: int, reason: str) -> str:
    parts = []
    if pending - unsure:
        parts.append(f"{pending - unsure} message(s) not stored")
    if unsure:
        parts.append(f"{unsure} message(s) may or may not have been stored")
    return _sentence(f"{' and '.join(parts)}: {reason}")


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
