"""Interactive mode: a line editor at the bottom, the room scrolling above it.

prompt_toolkit does the line editing (history kept between sessions, completion,
several lines with Alt-Enter or a paste, redrawing the input when something is printed
above it). It runs its own asyncio loop, so it lives in a worker thread: lines reach
the trio side through a bounded memory object stream, and what the trio side prints
goes through prompt_toolkit's thread-safe stdout proxy. The prompt thread only reads
a `Snapshot` the trio side replaces whole, never the session itself.

A line you send is shown once: below the input, marked pending, until the server has
stored it; then in the room, with its time and number. Connection trouble is one line
below the input that updates in place, not a line per retry.

Replies are shown under a quote of the message they answer, from the messages this
session has shown (`Held`); edits, deletes and reactions are new lines in their place
(a scrolling terminal does not rewrite what it printed). While the person types a
message the room is told (at most every few seconds, unless --no-typing), and who else
is typing is shown under the input for a few seconds.

What is printed to the person is what they have read: an account's session marks the
room read up to the newest number printed (a few times a second at most), so its other
sessions and `/rooms` agree. A pipe or a listener never marks anything read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from platformdirs import user_data_path
from prompt_toolkit import PromptSession
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout

from purechat.client.admin import AdminError
from purechat.client.display import (
    CHANGE_KINDS,
    Shown,
    mentions,
    neutralise,
    plain_line,
    shown_name,
)
from purechat.client.living import Held, delete_frame, edit_frame, number, react_frame
from purechat.client.machine import TYPING_EVERY
from purechat.client.moderation import MODES, USAGE, CommandUsage, typed
from purechat.client.post import Poster, PostError
from purechat.client.reading import (
    MOST,
    Asker,
    history_lines,
    place,
    rooms_and_unread,
    search_lines,
    unread_words,
)
from purechat.client.session import ChatSession, SessionError
from purechat.core import Limits
from purechat.core.limits import room_problem
from purechat.core.living import TYPING_SHOWN_SECONDS
from purechat.core.names import name_problem
from purechat.pb import purechat_v1_pb2 as v1

COMMANDS = {
    "/help": "this list",
    "/who": "who is in the room",
    "/rooms": "rooms with members, on this server (and those sharing its store)",
    "/join": "/join ROOM: leave this room and join ROOM",
    "/me": "/me ACTION: say that you do something",
    "/nick": "/nick NAME: go on under another name (the room sees you leave and join)",
    "/msg": "/msg NAME TEXT: a direct message to the account NAME, staying here",
    "/dm": "/dm NAME: go to your conversation with the account NAME",
    "/history": "/history [N] | --before N | --after N | --around N: read this room back",
    "/search": "/search TEXT: messages holding the words, newest first (--more: older)",
    "/reply": "/reply N TEXT: answer message N (shown under a quote of it)",
    "/re": "/re TEXT: answer the last message that named you",
    "/edit": "/edit [N] TEXT: make your message N (or your last) say TEXT",
    "/delete": "/delete N: delete message N (yours; an operator: anyone's)",
    "/react": "/react N EMOJI: react to message N (/react N -EMOJI takes it back)",
    "/unreact": "/unreact N EMOJI: take back your reaction",
    "/quit": "leave (Ctrl-D too; Ctrl-C leaves at once)",
}
# Moderation: /claim, /kick, /ban... (client/moderation.py), for the room's owner and
# operators (and the server's admins); the server says why when one may not.
MODERATION = {f"/{action}": usage for action, usage in USAGE.items()}
HELP = "commands:\n" + "\n".join(f"  {name:<10}{about}" for name, about in COMMANDS.items())
HELP += "\n  Alt-Enter (or Esc, Enter) starts a new line; a paste of several lines is one message"
HELP += "\nmoderation (the room's owner and operators; DURATION like 10m, 2h, 7d):\n"
HELP += "\n".join(f"  {typed_as:<32}{about}" for typed_as, about in USAGE.values())
# Pending lines shown under the input, at most.
PENDING_SHOWN = 3
# How long quitting waits for undelivered lines when no --give-up-after was given.
QUIT_PATIENCE = 30.0
# Read markers go to the server at most this often (what was printed meanwhile is one).
MARK_EVERY = 0.5
# Messages /history and /search show when not told.
SHOWN_PAGE = 20
# Where /history reads from (a number after it).
AT = ("--before", "--after", "--around")
GAP = v1.Event.GAP
# A /msg that gets nowhere for this long is said to have failed.
MSG_PATIENCE = 30.0
# Someone's typing is shown this long after the frame that told it, at most.
TYPING_SHOWN = TYPING_SHOWN_SECONDS
# Lines being typed that are messages (anything else starting with "/" is a command).
SAYING = ("//", "/me ", "/reply ", "/re ", "/edit ", "/msg ")


@dataclass(frozen=True)
class Snapshot:
    """What the prompt thread shows, replaced whole by the trio side (never mutated)."""

    room: str = ""
    names: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    trouble: str = ""
    # time.monotonic() at which the next attempt to reconnect starts.
    retry_at: float = 0.0
    # Who else is typing, each until a time.monotonic(); how many more, until when.
    typing: tuple[tuple[str, float], ...] = ()
    typing_more: tuple[int, float] = (0, 0.0)


@dataclass
class _Shared:
    snapshot: Snapshot = field(default_factory=Snapshot)


def history_file() -> History:
    """Input history kept between sessions, in the user's data directory (XDG)."""
    try:
        folder = user_data_path("purechat", appauthor=False, ensure_exists=True)
        return FileHistory(str(Path(folder) / "history"))
    except OSError:
        return InMemoryHistory()


class _Completion(Completer):
    """Tab completes commands (with the space after them, so the argument follows),
    rooms after /join, and members' names."""

    def __init__(self, shared: _Shared):
        self._shared = shared

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        snapshot = self._shared.snapshot
        after = ""
        if text.startswith("/") and " " not in text:
            choices: Iterable[str] = [*COMMANDS, *MODERATION]
            after = " "
        elif text.startswith("/join "):
            choices = snapshot.rooms
        elif text.startswith("/mode "):
            choices = MODES
        else:
            choices = snapshot.names
        for choice in sorted(choices):
            if choice.lower().startswith(word.lower()) and choice + after != word:
                yield Completion(choice + after, start_position=-len(word), display=choice)


def _keys() -> KeyBindings:
    keys = KeyBindings()

    @keys.add("enter")
    def _send(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @keys.add("escape", "enter")
    def _new_line(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return keys


def _toolbar(shared: _Shared) -> Callable[[], str]:
    def toolbar() -> str:
        snapshot = shared.snapshot
        lines = [f"… pending: {neutralise(text)}" for text in snapshot.pending[:PENDING_SHOWN]]
        if len(snapshot.pending) > PENDING_SHOWN:
            lines.append(f"… and {len(snapshot.pending) - PENDING_SHOWN} more pending")
        if snapshot.trouble:
            left = max(0.0, snapshot.retry_at - time.monotonic())
            lines.append(f"! {neutralise(snapshot.trouble)}; trying again in {left:.0f}s")
        if typing := typing_line(snapshot.typing, snapshot.typing_more, time.monotonic()):
            lines.append(typing)
        return "\n".join(lines)

    return toolbar


def typing_line(
    typing: tuple[tuple[str, float], ...], more_until: tuple[int, float], now: float
) -> str:
    """`bob is typing…` for those whose time has not run out."""
    names = [shown_name(name) for name, until in typing if until > now]
    more = more_until[0] if more_until[1] > now else 0
    if more:
        names.append(f"{more} other{'s' if more > 1 else ''}")
    if not names:
        return ""
    said = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{said} {'is' if len(names) == 1 and not more else 'are'} typing…"


class _PromptThread:
    """The prompt loop on its own thread, stoppable from the trio side."""

    def __init__(self, shared: _Shared, history: History, typed: Callable[[], None] | None = None):
        self._shared = shared
        self._session: PromptSession[str] = PromptSession(
            history=history,
            completer=_Completion(shared),
            complete_while_typing=False,
            multiline=True,
            key_bindings=_keys(),
            erase_when_done=True,  # a sent line shows once: pending below, then stored
            bottom_toolbar=_toolbar(shared),
            refresh_interval=0.5,
        )
        self._stopping = threading.Event()
        # Tell the trio side the person is typing (at most once every few seconds).
        self._typed = typed
        self._typed_at = -math.inf
        if typed is not None:
            self._session.default_buffer.on_text_changed += self._on_text_changed

    def _on_text_changed(self, buffer: Buffer) -> None:
        text = buffer.text
        if not text.strip() or (text.startswith("/") and not text.startswith(SAYING)):
            return
        now = time.monotonic()
        if now - self._typed_at < TYPING_EVERY or self._typed is None:
            return
        self._typed_at = now
        try:
            anyio.from_thread.run_sync(self._typed)
        except RuntimeError:  # the trio side has finished: nobody to tell
            return

    def message(self) -> str:
        return f"[{self._shared.snapshot.room}] > "

    def loop(self, lines: MemoryObjectSendStream[str | None]) -> None:
        with lines:
            while not self._stopping.is_set():
                try:
                    line = self._session.prompt(self.message, pre_run=self._exit_if_stopping)
                except EOFError:
                    break
                except KeyboardInterrupt:
                    anyio.from_thread.run(lines.send, "\x03")
                    break
                anyio.from_thread.run(lines.send, line)
            anyio.from_thread.run(lines.send, None)

    def stop(self) -> None:
        self._stopping.set()
        app = self._session.app
        if app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(self._exit_if_stopping)

    def _exit_if_stopping(self) -> None:
        app = self._session.app
        if self._stopping.is_set() and app.is_running and not app.is_done:
            app.exit(exception=EOFError())


async def run_interactive(
    session: ChatSession,
    shown: MemoryObjectReceiveStream[Shown],
    *,
    bell: bool = True,
    history: History | None = None,
    quit_patience: float | None = None,
    typing: bool = True,
) -> int:
    """Chat until /quit, Ctrl-D or Ctrl-C; the exit status (1 if lines were not delivered).
    With typing, the room hears when the person types (others' typing is shown either
    way)."""
    shared = _Shared()
    prompt = _PromptThread(shared, history or history_file(), session.typing if typing else None)
    lines_send, lines = anyio.create_memory_object_stream[str | None](16)
    chat = _Chat(session, shared, bell=bell, patience=quit_patience or QUIT_PATIENCE)
    with patch_stdout(raw=True), lines:
        async with anyio.create_task_group() as task_group:
            chat.tasks = task_group
            task_group.start_soon(chat.show_events, shown)
            task_group.start_soon(chat.keep_snapshot)
            task_group.start_soon(chat.keep_marking)
            task_group.start_soon(anyio.to_thread.run_sync, prompt.loop, lines_send)
            try:
                async with anyio.create_task_group() as chatting:
                    chatting.start_soon(chat.handle_lines, lines, chatting.cancel_scope)
                    try:
                        await session.run()
                    except SessionError as error:
                        print(f"purechat: {error}")
                        chat.status = 1
                    chatting.cancel_scope.cancel()
            finally:
                prompt.stop()
                task_group.cancel_scope.cancel()
    return chat.status


class _Chat:
    """The trio side: commands, what is shown, and the snapshot for the prompt."""

    def __init__(self, session: ChatSession, shared: _Shared, *, bell: bool, patience: float):
        self.session = session
        self.shared = shared
        self.bell = bell
        self.patience = patience
        self.status = 0
        self.rooms: set[str] = {session.room}
        # Where /msg posts run (they may wait on the server), set by run_interactive.
        self.tasks: anyio.abc.TaskGroup | None = None
        # The newest number printed in the session's room, and whether it is marked.
        self._seen = 0
        self._seen_changed = anyio.Event()
        # The last search and the token of its older results ("": none).
        self._search: tuple[str, str] = ("", "")
        self._room = session.room
        # The messages shown here (replies quote them), the number of this member's last
        # message and of the last that named it, and who is typing until when.
        self.held = Held()
        self._mine = 0
        self._named = 0
        self._typing: dict[str, float] = {}
        self._typing_more = (0, 0.0)

    async def handle_lines(
        self, lines: MemoryObjectReceiveStream[str | None], done: anyio.CancelScope
    ) -> None:
        async for line in lines:
            if line == "\x03":  # Ctrl-C: now, saying what was not delivered
                self._quit_now()
                break
            if line is None or line.strip() == "/quit":
                await self._quit()
                break
            await self._handle(line)
        done.cancel()

    async def _handle(self, line: str) -> None:
        if not line.strip():
            return
        if not line.startswith("/") or line.startswith("//"):
            self.session.send(line.removeprefix("/") if line.startswith("//") else line)
            return
        command, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        if command == "/help":
            print(HELP)
        elif command == "/who":
            names = ", ".join(shown_name(name) for name in sorted(self.session.members))
            print(f"in {neutralise(self.session.room)}: {names or 'nobody'}")
        elif command == "/rooms":
            await self._rooms()
        elif command in ("/join", "/me", "/nick", "/dm", "/search") and not argument:
            print(f"! usage: {COMMANDS[command].split(':')[0]}")
        elif command in ("/reply", "/re"):
            self._reply(command, argument)
        elif command in ("/edit", "/delete", "/react", "/unreact"):
            self._change(command, argument, line.strip())
        elif command == "/msg":
            self._msg(argument)
        elif command == "/dm":
            await self._dm(argument)
        elif command == "/history":
            await self._history(argument)
        elif command == "/search":
            await self._find(argument)
        elif command == "/join":
            self._join(argument)
        elif command == "/nick":
            self._nick(argument)
        elif command == "/me":
            self.session.send(argument, action=True)
        elif command == "/topic" and not argument:
            topic = self.session.machine.topic
            print(f"topic: {neutralise(topic)}" if topic else "this room has no topic")
        elif command in MODERATION:
            self._moderate(command, argument, line.strip())
        else:
            print(f"! unknown command {neutralise(command)}; /help lists them")

    @property
    def asker(self) -> Asker:
        """Reading calls to the server the session is on, with its token."""
        session = self.session
        saved = session.machine.token_saved
        return Asker(session.address, session.ssl_context, session.token, saved)

    async def _rooms(self) -> None:
        """Rooms with members; for an account, what is unread in each, and its
        conversations."""
        try:
            rooms, read = await rooms_and_unread(self.asker)
        except AdminError as error:
            print(f"! {error}")
            return
        entries = {entry.room: entry for entry in read.entries} if read is not None else {}
        listed = []
        for room in rooms.rooms:
            self.rooms.add(room.name)
            entry = entries.pop(room.name, None)
            words = f", {unread_words(entry)}" if entry is not None and entry.unread else ""
            listed.append(f"{neutralise(room.name)} ({room.members}{words})")
        print(f"rooms: {', '.join(listed) or 'none with members'}")
        talks = [entry for entry in entries.values() if entry.peer]
        if talks:
            said = ", ".join(
                neutralise(place(e.room, e.peer)) + (f" ({unread_words(e)})" if e.unread else "")
                for e in sorted(talks, key=lambda e: e.peer)
            )
            print(f"conversations: {said}")

    def _msg(self, argument: str) -> None:
        """/msg NAME TEXT: posted (exactly once, retried with its id) without leaving."""
        to, _, text = argument.partition(" ")
        if not to or not text.strip():
            print(f"! usage: {COMMANDS['/msg'].split(':')[0]}")
            return
        session = self.session
        poster = Poster(
            session.addresses,
            "",
            session.machine.my_name or session.machine.name,
            give_up_after=MSG_PATIENCE,
            ssl_context=session.ssl_context,
            token=session.token,
            token_saved=session.machine.token_saved,
            to=to,
        )

        async def post() -> None:
            try:
                (posted,) = await poster.post([text])
            except PostError as error:
                print(f"! {error}")
                return
            print(f"-> {shown_name(to)}: {neutralise(text)}  #{posted.seq}", flush=True)

        assert self.tasks is not None
        self.tasks.start_soon(post)

    async def _dm(self, account: str) -> None:
        """/dm NAME: to the conversation, once the server says it may be had (a guest,
        an unknown account: its sentence, and the session stays where it is)."""
        try:
            await self.asker.history(dm=account, limit=1)
        except AdminError as refused:
            print(f"! {refused}")
            return
        self.session.switch_dm(account)

    def _here(self) -> tuple[str, str]:
        """(room, dm) of where the session is, for reading calls."""
        machine = self.session.machine
        return ("", machine.peer or machine.dm) if machine.dm else (machine.room, "")

    async def _history(self, argument: str) -> None:
        """/history [N], or --before/--after/--around N: a page of this room's log."""
        words = argument.split()
        limit = SHOWN_PAGE
        at: dict[str, int | None] = dict.fromkeys(AT)
        if len(words) == 1 and words[0].isdigit():
            limit = int(words[0])
        elif len(words) == 2 and words[0] in AT and words[1].isdigit():
            at[words[0]] = int(words[1])
        elif words:
            print(f"! usage: {COMMANDS['/history'].split(':')[0]}")
            return
        room, dm = self._here()
        try:
            page = await self.asker.history(
                room=room,
                dm=dm,
                before=at["--before"],
                after=at["--after"],
                around=at["--around"],
                limit=max(1, min(limit, MOST)),
            )
        except AdminError as error:
            print(f"! {error}")
            return
        me = self.session.machine.my_name
        for line in history_lines(page, colour=True, me=me):
            print(
                line.replace("-- older: --", "-- older: /history --").replace(
                    "-- newer: --", "-- newer: /history --"
                )
            )
        self._saw(page.room, max((e.seq for e in page.events if e.kind != GAP), default=0))

    async def _find(self, argument: str) -> None:
        """/search TEXT, newest first; /search --more: the next older page."""
        text, page = argument, ""
        if argument == "--more":
            text, page = self._search
            if not page:
                print("! no older results: /search TEXT first")
                return
        try:
            found = await self.asker.search(text, limit=SHOWN_PAGE, page=page)
        except AdminError as error:
            print(f"! {error}")
            return
        self._search = (text, found.next)
        for line in search_lines(found, colour=True):
            print(line)
        if found.next:
            print("-- older results: /search --more")

    def _usage(self, command: str) -> None:
        print(f"! usage: {COMMANDS[command].split(':')[0]}")

    def _reply(self, command: str, argument: str) -> None:
        """/reply N TEXT, or /re TEXT: the last message that named this member."""
        if command == "/re":
            seq, text = self._named, argument
            if not seq:
                print("! no message has named you here yet: /reply N TEXT answers message N")
                return
        else:
            first, _, text = argument.partition(" ")
            seq = number(first) or 0
        if not seq or not text.strip():
            self._usage(command)
            return
        self.session.send(text.strip(), reply_to=seq)

    def _change(self, command: str, argument: str, line: str) -> None:
        """/edit [N] TEXT, /delete N, /react N EMOJI (-EMOJI), /unreact N EMOJI: queued
        in their place among the lines; the server says why when it will not."""
        first, _, rest = argument.partition(" ")
        seq, rest = number(first), rest.strip()
        if command == "/edit":
            if seq is None or not rest:  # `/edit TEXT`: this member's last message
                seq, rest = self._mine, argument
                if not self._mine:
                    print("! you have sent no message here yet: /edit N TEXT edits message N")
                    return
            if not rest:
                self._usage(command)
                return
            frame = edit_frame(seq, rest)
        elif command == "/delete":
            if seq is None or rest:
                self._usage(command)
                return
            frame = delete_frame(seq)
        else:
            if seq is None or not rest or " " in rest:
                self._usage(command)
                return
            remove = command == "/unreact" or (rest.startswith("-") and len(rest) > 1)
            frame = react_frame(seq, rest.removeprefix("-") if remove else rest, remove=remove)
        self.session.change(frame, line)

    def _join(self, room: str) -> None:
        if problem := room_problem(room, Limits()):
            print(f"! {problem}")
            return
        self.rooms.add(room)
        self.session.switch_room(room)

    def _moderate(self, command: str, argument: str, line: str) -> None:
        """A moderation command: its shape checked here (a usage sentence, and nothing
        sent, when it is wrong), the rest by the server, which says why it refuses."""
        try:
            moderation = typed(command.removeprefix("/"), argument, self.session.members)
        except CommandUsage as wrong:
            print(f"! {wrong}")
            return
        self.session.moderate(moderation, line)

    def _nick(self, name: str) -> None:
        if problem := name_problem(name, Limits()):
            print(f"! {problem}")
            return
        self.session.rename(name)

    async def _quit(self) -> None:
        """Leave; lines not yet stored are waited for (Ctrl-C: not), then told."""
        waiting = self.session.undelivered
        if waiting:
            print(
                f"! {waiting} message(s) not delivered yet: waiting for them (up to "
                f"{self.patience:g}s; Ctrl-C leaves now)"
            )
            if self.session.machine.give_up_after is None:
                self.session.machine.give_up_after = self.patience
        self.session.finish()
        with anyio.move_on_after(self.patience + 1):
            await self.session.wait_delivered()
        if self.session.undelivered and not self.session.gave_up:
            self._quit_now()
        # A session that gave up says why itself, in one sentence that counts the
        # messages not delivered (run_interactive prints it).

    def _quit_now(self) -> None:
        if waiting := self.session.undelivered:
            print(f"purechat: {waiting} message(s) not delivered")
            self.status = 1

    async def show_events(self, shown: MemoryObjectReceiveStream[Shown]) -> None:
        async with shown:
            async for item in shown:
                self.refresh()
                if item.kind == "status":
                    continue  # shown in place, under the input
                if item.kind == "typing":
                    self._someone_typing(item)
                    continue
                me = self.session.machine.my_name
                quote = self.held.quote(item.reply_to) if item.reply_to else ""
                line = plain_line(item, colour=True, me=me, quote=quote)
                if item.kind == "message" and item.user == me and item.seq:
                    line += f"  #{item.seq}"
                    self._mine = max(self._mine, item.seq)
                elif item.kind == "message" and item.seq and not item.action:
                    line += f"  #{item.seq}"  # the number to /reply, /react to
                rings = item.kind == "message" and item.user != me and not item.history
                if rings and mentions(item.text, me):
                    self._named = max(self._named, item.seq)
                    if self.bell:
                        line += "\a"
                if item.kind == "message":
                    self._typing.pop(item.user, None)  # its message is here: done typing
                if item.kind == "conversation":
                    # Written to this person elsewhere: rings like a mention; read only
                    # once shown in full there (/dm), and of no other room's quotes.
                    print(line + ("\a" if self.bell else ""), flush=True)
                    self.refresh()
                    continue
                print(line, flush=True)
                self.held.saw(item)
                if item.kind in ("message", "moderation", *CHANGE_KINDS):
                    self._saw(item.room, item.seq)
                self.refresh()

    def _someone_typing(self, item: Shown) -> None:
        """Who else is typing, each shown until TYPING_SHOWN after this frame."""
        until = time.monotonic() + TYPING_SHOWN
        for name in item.typing:
            self._typing[name] = until
        self._typing_more = (item.more, until)
        self.refresh()

    def _saw(self, room: str, seq: int) -> None:
        """The person was shown room up to seq (keep_marking tells the server)."""
        if room == self.session.machine.room and seq > self._seen:
            self._seen = seq
            self._seen_changed.set()

    async def keep_marking(self) -> None:
        """Mark read what was printed: the newest number, at most every MARK_EVERY
        seconds (an account's session; the machine sends nothing otherwise)."""
        while True:
            await self._seen_changed.wait()
            self._seen_changed = anyio.Event()
            self.session.mark_read(self._seen)
            await anyio.sleep(MARK_EVERY)

    def refresh(self) -> None:
        """Give the prompt a new snapshot of the session."""
        machine = self.session.machine
        if machine.room != self._room:
            self._room, self._seen = machine.room, 0  # another room: nothing seen there yet
        self.rooms.add(machine.room)
        self.shared.snapshot = Snapshot(
            room=machine.place,
            names=tuple(machine.members),
            rooms=tuple(self.rooms),
            pending=tuple(line.text for line in machine.pending.values()),
            trouble=machine.trouble,
            retry_at=time.monotonic() + max(0.0, machine.reconnect_at - anyio.current_time()),
            typing=tuple(self._typing.items()),
            typing_more=self._typing_more,
        )

    async def keep_snapshot(self) -> None:
        """Keep what the prompt shows up to date: at each event, and a few times a
        second for what changes without one (pending lines, the countdown)."""
        while True:
            self.refresh()
            await anyio.sleep(0.2)
