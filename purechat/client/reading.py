"""Reading back, at every client door: history by position, search, conversations and
unread counts (purechat.v1's unary Chat.History, Chat.Search, Chat.Conversations), and
how their answers look as lines and JSON.

The server decides who may read what (a conversation: its two accounts only), and says
why not in a sentence; these only ask and show.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from purechat.client.admin import AdminError, call
from purechat.client.display import (
    MARK,
    RESET,
    Shown,
    json_line,
    local_clock,
    neutralise,
    plain_line,
    shown_name,
)
from purechat.client.machine import event_shown
from purechat.client.session import Address
from purechat.pb import purechat_v1_pb2 as v1

CHAT = "purechat.v1.Chat"
# Messages a page of history or search holds when the person does not say.
PAGE = 50
# The most a server gives in one page (server/reading.py's MAX_PAGE).
MOST = 500


@dataclass(frozen=True, slots=True)
class Asker:
    """Where unary reading calls go, and with which token."""

    address: Address
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None
    saved: bool = False

    async def ask(self, method: str, request: Message, reply: type[Message]) -> Message:
        """One call of Chat; AdminError with the server's sentence when refused."""
        return await call(
            self.address,
            method,
            request,
            reply,
            ssl_context=self.ssl_context,
            token=self.token,
            saved=self.saved,
            service=CHAT,
        )

    async def history(
        self,
        *,
        room: str = "",
        dm: str = "",
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
        limit: int = PAGE,
    ) -> v1.HistoryResponse:
        request = v1.HistoryRequest(room=room, dm=dm, limit=limit)
        if before is not None:
            request.before = before
        if after is not None:
            request.after = after
        if around is not None:
            request.around = around
        answer = await self.ask("History", request, v1.HistoryResponse)
        assert isinstance(answer, v1.HistoryResponse)
        return answer

    async def search(
        self, text: str, *, room: str = "", dm: str = "", limit: int = PAGE, page: str = ""
    ) -> v1.SearchResponse:
        request = v1.SearchRequest(text=text, room=room, dm=dm, limit=limit, page=page)
        answer = await self.ask("Search", request, v1.SearchResponse)
        assert isinstance(answer, v1.SearchResponse)
        return answer

    async def conversations(self) -> v1.ConversationsResponse:
        answer = await self.ask(
            "Conversations", v1.ConversationsRequest(), v1.ConversationsResponse
        )
        assert isinstance(answer, v1.ConversationsResponse)
        return answer


def place(room: str, peer: str) -> str:
    """A room as a person names it: its name, or @peer for a conversation."""
    return f"@{peer}" if peer else room


# -- history ----------------------------------------------------------------------------


def history_lines(page: v1.HistoryResponse, *, colour: bool = False, me: str = "") -> list[str]:
    """A page of history as lines, oldest first, each message with its number (to page
    on from: --before N, --around N); gaps said as gaps; what lies beyond, said last."""
    lines = []
    for event in page.events:
        shown = event_shown(event)
        line = plain_line(shown, colour=colour, me=me)
        if shown.seq and shown.kind in ("message", "moderation"):
            line += f"  #{shown.seq}"
        lines.append(line)
    if not page.events:
        lines.append(f"-- nothing in {neutralise(place(page.room, page.peer))} there")
    first, last = _numbers(page)
    if page.more_before and first:
        lines.append(f"-- older: --before {first}")
    if page.more_after and last:
        lines.append(f"-- newer: --after {last}")
    return lines


def _numbers(page: v1.HistoryResponse) -> tuple[int, int]:
    numbers = [e.seq for e in page.events if e.kind != v1.Event.GAP and e.seq]
    numbers += [e.seq + 1 for e in page.events if e.kind == v1.Event.GAP]
    numbers += [e.gap_until for e in page.events if e.kind == v1.Event.GAP]
    return (min(numbers), max(numbers)) if numbers else (0, 0)


def history_json(page: v1.HistoryResponse) -> list[str]:
    """One JSON object per event, as a pipe's (`kind`, `room`, `seq`, ...), with the
    conversation's `peer`, and gaps with their `gap_until`."""
    lines = []
    for event in page.events:
        item = json.loads(json_line(event_shown(event)))
        item["peer"] = page.peer
        if event.kind == v1.Event.GAP:
            item["gap_until"] = event.gap_until
        lines.append(json.dumps(item))
    return lines


# -- search -----------------------------------------------------------------------------


def marked(text: str, marks: Sequence[int], *, colour: bool) -> str:
    """text, control characters shown, with the found words between [[ ]] (or in the
    terminal's bold reverse video with colour)."""
    text = text.replace("\n", " ")  # one line per result (the same length: marks hold)
    pieces, at = [], 0
    spans = list(zip(marks[::2], marks[1::2], strict=False))
    for start, end in spans:
        if start < at or end > len(text):
            continue
        pieces.append(neutralise(text[at:start]))
        found = neutralise(text[start:end])
        pieces.append(f"{MARK}{found}{RESET}" if colour else f"[[{found}]]")
        at = end
    pieces.append(neutralise(text[at:]))
    return "".join(pieces)


def search_lines(answer: v1.SearchResponse, *, colour: bool = False) -> list[str]:
    """Results newest first: where (room or @peer), number, time, sender, the text with
    the found words marked."""
    lines = []
    for found in answer.found:
        shown = event_shown(found.event)
        head = _found_head(shown, found.peer)
        lines.append(f"{head} {marked(shown.text, found.marks, colour=colour)}")
    if not answer.found:
        lines.append("-- nothing found")
    return lines


def _found_head(shown: Shown, peer: str) -> str:
    where = neutralise(place(shown.room, peer))
    stamp = f" [{local_clock(shown.time_ms)}]" if shown.time_ms else ""
    return f"{where} #{shown.seq}{stamp} {shown_name(shown.user)}:"


def search_json(answer: v1.SearchResponse) -> list[str]:
    """One JSON object per result, newest first: a pipe's fields, the conversation's
    `peer`, and `marks`: [start, end) pairs of the found words in `text`."""
    lines = []
    for found in answer.found:
        item = json.loads(json_line(event_shown(found.event)))
        item["peer"] = found.peer
        marks = found.marks
        item["marks"] = [list(pair) for pair in zip(marks[::2], marks[1::2], strict=False)]
        lines.append(json.dumps(item))
    return lines


# -- conversations and unread counts ------------------------------------------------------


def unread_words(entry: v1.ConversationsResponse.Entry) -> str:
    """ "3 unread, 1 mention", or "" when all is read."""
    if not entry.unread:
        return ""
    words = f"{entry.unread} unread"
    if entry.mentions:
        words += f", {entry.mentions} mention{'s' if entry.mentions > 1 else ''}"
    return words


async def rooms_and_unread(
    asker: Asker,
) -> tuple[v1.ListRoomsResponse, v1.ConversationsResponse | None]:
    """The server's rooms, and (for an account) its conversations and unread counts:
    None for a guest or a name without an account."""
    rooms = await call(
        asker.address,
        "ListRooms",
        v1.ListRoomsRequest(),
        v1.ListRoomsResponse,
        ssl_context=asker.ssl_context,
        token=asker.token,
        saved=asker.saved,
    )
    assert isinstance(rooms, v1.ListRoomsResponse)
    if not asker.token:
        return rooms, None
    try:
        return rooms, await asker.conversations()
    except AdminError:
        return rooms, None  # a token's name, not an account: nothing kept for it


def room_lines(
    rooms: v1.ListRoomsResponse, read: v1.ConversationsResponse | None = None
) -> list[str]:
    """`purechat rooms`: each room with members (with what is unread in it, for an
    account), then the account's conversations and the rooms it has read in that have
    no members now; "no rooms have members" when there is nothing to list."""
    entries = {entry.room: entry for entry in read.entries} if read is not None else {}
    lines = []
    for room in rooms.rooms:
        topic = f"\ttopic: {neutralise(room.topic)}" if room.topic else ""
        entry = entries.pop(room.name, None)
        unread = f"\t{words}" if entry is not None and (words := unread_words(entry)) else ""
        lines.append(
            f"{neutralise(room.name)}\t{room.members} members\tlast message "
            f"#{room.last_seq}{unread}{topic}"
        )
    if not lines and not entries:
        return ["no rooms have members"]
    for entry in sorted(entries.values(), key=lambda e: (not e.peer, e.peer or e.room)):
        what = "conversation" if entry.peer else "no members"
        words = unread_words(entry)
        lines.append(
            f"{neutralise(place(entry.room, entry.peer))}\t{what}\tlast message "
            f"#{entry.last_seq}" + (f"\t{words}" if words else "")
        )
    return lines
