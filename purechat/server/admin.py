"""purechat.v1.Admin: what `purechat rooms`, `who`, `audit` and `admin` ask a server.

Listing rooms and members is open to any caller the server admits; the rest is for the
server's admins, except a room's bans and audit log, which its owner and operators may
read too. Permissions are decided here for every door that asks (the CLI's commands,
the Python API), from the caller's identity.
"""

from __future__ import annotations

import time

from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.core import Identity
from purechat.core.conversations import may_enter
from purechat.core.moderation import Restriction, RoomState
from purechat.errors import NotAllowed, PurechatError, StoreError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server.accounts import answer
from purechat.server.roster import Roster
from purechat.server.services import Services
from purechat.status import Status
from purechat.store.directory import AuditEntry
from purechat.transport import Stream

ADMIN_SERVICE = "purechat.v1.Admin"
MAX_AUDIT = 1000


class AdminService:
    def __init__(self, services: Services, roster: Roster):
        self._services = services
        self._roster = roster

    async def serve(self, stream: Stream, method: str, identity: Identity) -> Status:
        raw = await stream.receive()
        try:
            return await self._serve(stream, method, raw or b"", identity)
        except DecodeError:
            return statuses.undecodable(f"the request of {ADMIN_SERVICE}/{method}")
        except StoreError as error:
            self._services.store_failed(error, f"an admin's {method}")
            return statuses.for_error(error)
        except PurechatError as refused:
            return statuses.for_error(refused)

    async def _serve(self, stream: Stream, method: str, raw: bytes, identity: Identity) -> Status:
        services = self._services
        directory = services.directory
        if method == "ListRooms":
            response = v1.ListRoomsResponse()
            for name, members, last_seq in await services.rooms():
                state = await self._state(name)
                response.rooms.add(name=name, members=members, last_seq=last_seq, topic=state.topic)
            return await answer(stream, response)
        if method == "ListMembers":
            room = v1.ListMembersRequest.FromString(raw).room
            if refusal := may_enter(room, identity.key):
                raise NotAllowed(refusal)
            return await answer(
                stream, v1.ListMembersResponse(members=await self._roster.members(room))
            )
        if directory is None:
            raise NotAllowed("This server keeps no accounts.")
        if method == "Audit":
            asked = v1.AuditRequest.FromString(raw)
            await self._may_read(identity, asked.room)
            limit = min(asked.limit or 100, MAX_AUDIT)
            found = await directory.audit_log(asked.room or None, limit)
            return await answer(stream, v1.AuditResponse(entries=[_audit(e) for e in found]))
        if method == "ListBans":
            room = v1.ListBansRequest.FromString(raw).room
            await self._may_read(identity, room)
            if room:
                bans = (await self._state(room)).bans
            else:
                bans = {f"address:{p}": b for p, b in (await directory.server_bans()).items()}
            listed = [_ban(target, ban) for target, ban in sorted(bans.items())]
            return await answer(stream, v1.ListBansResponse(bans=listed))
        _admin_only(identity)
        if method == "ListSessions":
            account = v1.AccountRequest.FromString(raw).account
            sessions = [
                v1.ListSessionsResponse.Session(
                    created_unix_ms=s.created_ms, expires_unix_ms=s.expires_ms
                )
                for s in await directory.sessions(account)
            ]
            return await answer(stream, v1.ListSessionsResponse(sessions=sessions))
        if method == "EndSessions":
            account = v1.AccountRequest.FromString(raw).account
            ended = await directory.end_sessions(account, f"ended by {identity.account}")
            await directory.audit(
                AuditEntry(_now_ms(), identity.account or "", "logout-all", target=account)
            )
            return await answer(stream, v1.EndSessionsResponse(ended=ended))
        if method in ("BanAddress", "UnbanAddress"):
            request = v1.BanAddressRequest.FromString(raw)
            if method == "BanAddress":
                seconds = request.seconds if request.HasField("seconds") else None
                until = _now_ms() + int(seconds * 1000) if seconds else 0
                ban = Restriction(until, request.reason, identity.account or "", request.address)
                prefix = await directory.ban_address(request.address, ban)
            else:
                if not await directory.unban_address(request.address):
                    raise NotAllowed(f"{request.address} is not banned from this server.")
                prefix = request.address
            await directory.audit(
                AuditEntry(
                    _now_ms(),
                    identity.account or "",
                    method.lower(),
                    target=prefix,
                    detail=request.reason,
                )
            )
            return await answer(stream, v1.BanAddressResponse(prefix=prefix))
        return statuses.unimplemented(f"/{ADMIN_SERVICE}/{method}")

    async def _state(self, room: str) -> RoomState:
        state = self._services.hub.room_state(room)
        if state is None:
            state = await self._services.known_state(room)
        return state or RoomState()

    async def _may_read(self, identity: Identity, room: str) -> None:
        """A room's bans and audit: its owner, operators and the admins; the rest: admins."""
        if identity.admin:
            return
        if room:
            if (await self._state(room)).role(identity.key) != "member":
                return
            raise NotAllowed(f"Only the owner and operators of {room} (or an admin) may read that.")
        raise NotAllowed("Only the server's admins may read that.")


def _admin_only(identity: Identity) -> None:
    if not identity.admin:
        raise NotAllowed("Only the server's admins may do that.")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _audit(entry: AuditEntry) -> v1.AuditResponse.Entry:
    return v1.AuditResponse.Entry(
        time_unix_ms=entry.time_ms,
        actor=entry.actor,
        action=entry.action,
        room=entry.room,
        target=entry.target,
        detail=entry.detail,
    )


def _ban(target: str, ban: Restriction) -> v1.Ban:
    return v1.Ban(target=target, by=ban.by, reason=ban.reason, until_unix_ms=ban.until_ms)
