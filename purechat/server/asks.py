"""What a member asks the server that is not a message, answered the same for every door.

Today one ask: the rooms with members (the web page's `rooms` frame, for its room
list). A member may ask what `purechat rooms` may (Admin/ListRooms, which needs the
same token a member needed to get in), so being in a room is permission enough; an
ask is paced like a message (see `serve_member`), so asking cannot flood the store.
"""

from __future__ import annotations

from purechat.core import ErrorCode, Notice, RoomCount, RoomList
from purechat.server.services import Services
from purechat.store import StoreError

ROOMS_UNAVAILABLE = "The room list cannot be had now: the server's store does not answer."


async def room_list(services: Services) -> RoomList | Notice:
    """The rooms with members, on every server sharing the store (as `purechat rooms`
    lists them), or a notice saying why not."""
    try:
        rooms = await services.rooms()
    except StoreError as error:
        services.store_failed(error, "a room list")
        return Notice(ErrorCode.STORE_UNAVAILABLE, ROOMS_UNAVAILABLE)
    return RoomList(tuple(RoomCount(name, members, seq) for name, members, seq in rooms))
