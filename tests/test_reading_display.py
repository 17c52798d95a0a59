"""How reading back looks, without a network: a page of history with a gap and what lies
beyond it, search results with the found words marked (and control characters shown,
not obeyed), and `purechat rooms` with unread counts and conversations."""

from __future__ import annotations

import json

from purechat.client.display import MARK, RESET
from purechat.client.reading import history_lines, room_lines, search_json, search_lines
from purechat.pb import purechat_v1_pb2 as v1

E = v1.Event


def _message(seq: int, text: str, user: str = "alice") -> v1.Event:
    return E(kind=E.MESSAGE, room="ops", seq=seq, user=user, text=text)


def test_a_page_of_history_says_its_gap_and_where_to_page_on() -> None:
    page = v1.HistoryResponse(
        room="ops",
        last_seq=30,
        events=[
            _message(3, "first"),
            E(kind=E.GAP, room="ops", seq=3, gap_until=9),
            _message(10, "later"),
        ],
        more_before=True,
        more_after=True,
    )
    assert history_lines(page) == [
        "alice: first  #3",
        "! messages 4 to 9 are no longer kept",
        "alice: later  #10",
        "-- older: --before 3",
        "-- newer: --after 10",
    ]
    empty = v1.HistoryResponse(room="@dm:alice:bob", peer="bob")
    assert history_lines(empty) == ["-- nothing in @bob there"]


def test_search_results_mark_the_words_found_and_show_control_characters() -> None:
    text = "deploy\x1b[2J now\nthen DEPLOY"
    found = v1.SearchResponse(
        found=[v1.SearchResponse.Found(event=_message(7, text), marks=[0, 6, 20, 26], peer="")],
        next="p",
    )
    (line,) = search_lines(found)
    assert line == "ops #7 alice: [[deploy]]\\x1b[2J now then [[DEPLOY]]"
    (coloured,) = search_lines(found, colour=True)
    assert f"{MARK}deploy{RESET}" in coloured and "\x1b[2J" not in coloured
    (as_json,) = search_json(found)
    item = json.loads(as_json)
    assert item["marks"] == [[0, 6], [20, 26]] and item["text"] == text
    assert search_lines(v1.SearchResponse()) == ["-- nothing found"]


def test_rooms_show_what_is_unread_and_the_accounts_conversations() -> None:
    rooms = v1.ListRoomsResponse(
        rooms=[v1.ListRoomsResponse.Room(name="ops", members=2, last_seq=40)]
    )
    Entry = v1.ConversationsResponse.Entry
    read = v1.ConversationsResponse(
        entries=[
            Entry(room="ops", last_seq=40, read_seq=35, unread=5, mentions=2),
            Entry(room="@dm:alice:bob", peer="bob", last_seq=3, read_seq=3),
        ]
    )
    assert room_lines(rooms, read) == [
        "ops\t2 members\tlast message #40\t5 unread, 2 mentions",
        "@bob\tconversation\tlast message #3",
    ]
    assert room_lines(rooms) == ["ops\t2 members\tlast message #40"]
    assert room_lines(v1.ListRoomsResponse()) == ["no rooms have members"]
