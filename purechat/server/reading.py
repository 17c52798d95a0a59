"""Reading back: history by position, search, conversations, read markers.

The same for every door (purechat.v1's calls, the page's asks): who may read a room is
who may join it (core/moderation.py's rules and core/conversations.py's privacy),
decided here once, before anything is read from the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from purechat.core import (
    ConversationEntry,
    ConversationList,
    EntryKind,
    EventKind,
    Found,
    HistoryPage,
    Identity,
    Message,
    RoomEvent,
    SearchPage,
)
from purechat.core.conversations import (
    ConversationRefused,
    conversation_room,
    is_conversation,
    may_enter,
    peer_of,
)
from purechat.core.limits import DEFAULT_ROOM, room_problem
from purechat.core.moderation import refusal_to_join
from purechat.core.names import name_key
from purechat.errors import NotAllowed, Refusal
from purechat.server.services import Services
from purechat.store.base import SearchCursor, query_words, words_of

# A page of history or search holds at most this many messages (and by default this).
MAX_PAGE = 500
DEFAULT_PAGE = 50
# Unread messages read to count mentions; beyond them a count is "at least".
MENTIONS_READ = 1000
# Pages of raw results a search reads to fill one page of what the caller may read.
SEARCH_ROUNDS = 5


async def conversation(services: Services, identity: Identity, peer: str) -> tuple[str, str]:
    """The room of identity's conversation with the account `peer`, and peer's name;
    refusals as sentences (guests, unknown accounts)."""
    directory = services.directory
    if identity.account is None or directory is None:
        raise ConversationRefused(
            "Direct messages are between accounts: log in to have conversations."
        )
    me = await directory.account(identity.account)
    if me is None:
        raise ConversationRefused(
            "Direct messages are between registered accounts, and yours is a token's name."
        )
    other = await directory.account(peer)
    if other is None:
        raise Refusal(f"There is no account called {peer}.")
    room = conversation_room(me.key, other.key)
    await directory.note_conversation(room, me, other)
    return room, other.name


async def check_read(services: Services, identity: Identity, room: str) -> None:
    """NotAllowed with the sentence when identity may not read room."""
    if refusal := may_enter(room, identity.key):
        raise ConversationRefused(refusal)
    state = services.hub.room_state(room) or await services.known_state(room)
    if state is not None:
        refusal = refusal_to_join(
            state,
            identity.key,
            identity.address,
            identity.account or "",
            services.hub.now_ms(),
            admin=identity.admin,
        )
        if refusal:
            raise NotAllowed(refusal)


async def readable(services: Services, identity: Identity, room: str, dm: str) -> tuple[str, str]:
    """The room a request names (a room, or a conversation by the other account), and
    the other account's name for a conversation, once identity may read it."""
    if dm:
        return await conversation(services, identity, dm)
    room = room or DEFAULT_ROOM
    if problem := room_problem(room, services.hub.limits):
        raise Refusal(problem)
    await check_read(services, identity, room)
    return room, await _peer_name(services, identity, room)


@dataclass(frozen=True, slots=True)
class HistoryAsk:
    """A page of a room's (or conversation's) log: before, after or around a number,
    or the newest (see HistoryRequest in the proto)."""

    room: str = ""
    dm: str = ""
    before: int | None = None
    after: int | None = None
    around: int | None = None
    limit: int = 0


@dataclass(frozen=True, slots=True)
class SearchAsk:
    """Messages holding the words of text (see SearchRequest in the proto)."""

    text: str
    room: str = ""
    dm: str = ""
    limit: int = 0
    page: str = ""


@dataclass(frozen=True, slots=True)
class ConversationsAsk:
    """The member's conversations and read rooms, with unread counts."""


@dataclass(frozen=True, slots=True)
class MarkRead:
    """The person has seen room (the member's own: "") up to seq."""

    room: str
    seq: int


async def history(services: Services, identity: Identity, ask: HistoryAsk) -> HistoryPage:
    """A page of the room's log, gaps said as GAP events."""
    room, peer = await readable(services, identity, ask.room, ask.dm)
    at, limit = ask, max(1, min(ask.limit or DEFAULT_PAGE, MAX_PAGE))
    head = await services.store.head(room)
    newest = head.seq
    if at.before is not None:
        upto = min(newest, max(0, at.before - 1))
        after = max(0, upto - limit)
    elif at.after is not None:
        after = min(at.after, newest)
        upto = min(newest, after + limit)
    elif at.around is not None:
        upto = min(newest, at.around + limit // 2)
        after = max(0, upto - limit)
    else:
        upto, after = newest, max(0, newest - limit)
    found = await services.store.read(room, after=after, upto=upto) if upto > after else []
    return HistoryPage(
        room,
        head.epoch,
        newest,
        tuple(_with_gaps(room, found, after, upto)),
        more_before=after > 0,
        more_after=upto < newest,
        peer=peer,
    )


def _with_gaps(room: str, found: list[Message], after: int, upto: int) -> list[Message | RoomEvent]:
    """The messages, with a GAP event wherever numbers in (after, upto] are missing."""
    events: list[Message | RoomEvent] = []
    expected = after + 1
    for message in found:
        if message.seq > expected:
            events.append(
                RoomEvent(EventKind.GAP, room, seq=expected - 1, gap_until=message.seq - 1)
            )
        events.append(message)
        expected = message.seq + 1
    if found and expected <= upto:
        events.append(RoomEvent(EventKind.GAP, room, seq=expected - 1, gap_until=upto))
    if not found and upto > after:
        events.append(RoomEvent(EventKind.GAP, room, seq=after, gap_until=upto))
    return events


async def search(services: Services, identity: Identity, ask: SearchAsk) -> SearchPage:
    """Messages holding the words of ask.text, across what identity may read (or one
    room or conversation), newest first; `ask.page` continues a previous answer."""
    words = query_words(ask.text)
    if not words:
        raise Refusal("Give a word to search for.")
    limit = max(1, min(ask.limit or DEFAULT_PAGE, MAX_PAGE))
    rooms: list[str] | None
    if ask.room or ask.dm:
        rooms = [(await readable(services, identity, ask.room, ask.dm))[0]]
    else:
        rooms = await _rooms_to_search(services, identity)
    before = _cursor(ask.page) if ask.page else None
    allowed: dict[str, bool] = {}
    results: list[Found] = []
    for _ in range(SEARCH_ROUNDS):
        batch = await services.store.search(words, rooms, 2 * limit, before)
        for message in batch:
            if await _may(services, identity, message.room, allowed):
                peer = await _peer_name(services, identity, message.room)
                results.append(Found(message, tuple(_marks(message.text, words)), peer))
                if len(results) == limit:
                    return SearchPage(tuple(results), _page(message))
        if len(batch) < 2 * limit:
            break
        before = SearchCursor(batch[-1].time_ms, batch[-1].room, batch[-1].seq)
    return SearchPage(tuple(results))


async def conversations(services: Services, identity: Identity) -> ConversationList:
    """identity's conversations and the rooms it has read in, with what is unread."""
    directory = services.directory
    key = identity.key
    if key is None or directory is None:
        raise ConversationRefused("Only accounts keep conversations and read markers: log in.")
    peers = await directory.conversations(key)
    markers = await directory.read_markers(key)
    entries = []
    for room in sorted(set(peers) | set(markers)):
        newest = (await services.store.head(room)).seq
        read = markers.get(room, 0)
        unread, mentions = await _unread(services, identity, room, read, newest)
        entries.append(ConversationEntry(room, peers.get(room, ""), newest, read, unread, mentions))
    return ConversationList(tuple(entries))


async def mark_read(services: Services, identity: Identity, room: str, seq: int) -> None:
    """identity's account has read room up to seq (its sessions hear it, on every
    server, through the directory's control records)."""
    if identity.key is None or services.directory is None:
        raise NotAllowed("Only accounts keep read markers: log in.")
    await check_read(services, identity, room)
    await services.directory.mark_read(identity.key, room, seq)


# -- internals ------------------------------------------------------------------------


async def _unread(
    services: Services, identity: Identity, room: str, read: int, newest: int
) -> tuple[int, int]:
    """Messages after read by others, and those of them that name the account."""
    if newest <= read:
        return 0, 0
    start = max(read, newest - MENTIONS_READ)
    found = await services.store.read(room, after=start, upto=newest)
    mine = name_key(identity.account or "")
    unread = (start - read) + sum(1 for m in found if name_key(m.user) != mine)
    name = re.compile(rf"(?<!\w){re.escape(identity.account or '')}(?!\w)", re.IGNORECASE)
    mentions = sum(
        1
        for m in found
        if m.kind is EntryKind.MESSAGE and name_key(m.user) != mine and name.search(m.text)
    )
    return unread, mentions


async def _rooms_to_search(services: Services, identity: Identity) -> list[str] | None:
    """None (every room: the store filters nothing, the caller's rights are checked
    per result) when the store can search everything at once; else the rooms the
    caller is likely to read: its conversations, rooms with markers, open rooms."""
    if getattr(services.store, "searches_everything", False):
        return None
    rooms = {name for name, _, _ in await services.rooms()}
    rooms.update(services.hub.room_names())
    if identity.key is not None and services.directory is not None:
        rooms.update(await services.directory.conversations(identity.key))
        rooms.update(await services.directory.read_markers(identity.key))
    return sorted(rooms)


async def _may(services: Services, identity: Identity, room: str, seen: dict[str, bool]) -> bool:
    if room not in seen:
        try:
            await check_read(services, identity, room)
            seen[room] = True
        except NotAllowed:
            seen[room] = False
    return seen[room]


async def _peer_name(services: Services, identity: Identity, room: str) -> str:
    if not is_conversation(room) or identity.key is None or services.directory is None:
        return ""
    key = peer_of(room, identity.key)
    account = await services.directory.account(key) if key else None
    return account.name if account else ""


def _marks(text: str, words: list[str]) -> list[int]:
    """[start, end) of each word of text that is one of words (case and accents aside)."""
    wanted = {folded for word in words for folded in words_of(word)}
    marks: list[int] = []
    for match in re.finditer(r"\w+", text):
        if set(words_of(match.group())) & wanted:
            marks += [match.start(), match.end()]
    return marks


def _page(message: Message) -> str:
    return f"{message.time_ms}:{message.seq}:{message.room}"


def _cursor(page: str) -> SearchCursor:
    try:
        time_ms, seq, room = page.split(":", 2)
        return SearchCursor(int(time_ms), room, int(seq))
    except ValueError:
        raise Refusal("That page of search results is not one this server gave.") from None
