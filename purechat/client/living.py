"""Living messages on the client: edits, deletes and reactions as purechat.v1 frames,
and what a client holds of the messages it has shown, to quote a reply's answered
message and keep it current as changes arrive.

`/edit 12 new text` in `purechat join`, `purechat edit --room R 12 new text` and
`chat.edit(12, "new text")` all become the same `EditMessage`. Whether it may be done
is the server's to decide (core/living.py), once, for every door; it answers with a
sentence when not.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from purechat.client.display import Revision, Shown, quoted
from purechat.pb import purechat_v1_pb2 as v1

__all__ = ["HELD", "Held", "delete_frame", "edit_frame", "number", "react_frame"]

# Messages a client holds to quote replies from, at most (the oldest are forgotten).
HELD = 2000


def edit_frame(seq: int, text: str) -> v1.ClientFrame:
    return v1.ClientFrame(edit=v1.EditMessage(seq=seq, text=text))


def delete_frame(seq: int) -> v1.ClientFrame:
    return v1.ClientFrame(delete=v1.DeleteMessage(seq=seq))


def react_frame(seq: int, emoji: str, *, remove: bool = False) -> v1.ClientFrame:
    return v1.ClientFrame(react=v1.ReactMessage(seq=seq, emoji=emoji, remove=remove))


def number(word: str) -> int | None:
    """A message's number as typed: `12` or `#12` (None: not one)."""
    digits = word.removeprefix("#")
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


@dataclass(frozen=True, slots=True)
class _Message:
    user: str
    text: str
    revision: Revision | None


class Held:
    """The messages of one room a client has shown (the newest HELD), as they are
    after the changes it has seen: what a reply's quote is made from."""

    def __init__(self, most: int = HELD):
        self._most = most
        self._room = ""
        self._messages: OrderedDict[int, _Message] = OrderedDict()

    def saw(self, item: Shown) -> None:
        """A message, or a change to one, as shown (another room's: forget this one's)."""
        if item.room != self._room:
            self._room = item.room
            self._messages.clear()
        if item.kind == "message" and item.seq:
            self._messages[item.seq] = _Message(item.user, item.text, item.revision)
            self._messages.move_to_end(item.seq)
            while len(self._messages) > self._most:
                self._messages.popitem(last=False)
        elif item.kind in ("edit", "delete", "reaction") and item.target in self._messages:
            held = self._messages[item.target]
            text = item.text if item.kind == "edit" else held.text
            if item.kind == "delete":
                text = ""
            self._messages[item.target] = replace(held, text=text, revision=item.revision)

    def author(self, seq: int) -> str | None:
        """Who wrote message seq (None: not held)."""
        held = self._messages.get(seq)
        return held.user if held is not None else None

    def quote(self, seq: int) -> str:
        """`bob #12: the deploy is …`, or that it is not held here."""
        held = self._messages.get(seq)
        if held is None:
            return f"#{seq} (not shown here)"
        return quoted(held.user, seq, held.text, held.revision)
