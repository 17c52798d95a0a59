"""Who is where: this server's hub, or a store shared by several servers."""

from __future__ import annotations

from typing import Protocol

from purechat.core import Hub


class Roster(Protocol):
    """Who is where: this server's hub, or a store shared by several servers."""

    async def rooms(self) -> list[tuple[str, int, int]]: ...

    async def members(self, room: str) -> tuple[str, ...]: ...


class HubRoster:
    """The rooms and members of this server alone."""

    def __init__(self, hub: Hub):
        self.hub = hub

    async def rooms(self) -> list[tuple[str, int, int]]:
        return self.hub.rooms()

    async def members(self, room: str) -> tuple[str, ...]:
        return tuple(sorted(self.hub.members_of(room)))
