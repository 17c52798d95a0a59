"""Names people can trust: a look-alike of a name in use is never accepted as a second
copy of it, on either contract, and the terminal shows it so it cannot pass for it."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from purechat.client.calls import V1Call
from purechat.client.display import Shown, plain_line, shown_name
from purechat.core import Hub, JoinRefused, Limits
from purechat.core.names import clean_name, display_form, name_key, name_problem
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server.auth import TokenBook, TokenEntry, TokenFileError
from purechat.transport import StatusCode
from tests.fakes import FakeOutbox
from tests.helpers import Harness
from tests.processes import Lines, send_lines, start

NFC_JOSE = "jos\u00e9"
NFD_JOSE = "jose\u0301"

# (the look-alike, what a purechat.v1 join gets beside alice (a name, or a refusal's
# words), what an original-contract client gets beside alice)
LOOK_ALIKES = [
    ("\u0430lice", "\u0430lice-2", "\u0430lice-2"),  # Cyrillic a
    ("alice\u034f", "invisible characters", "alice-2"),  # combining grapheme joiner
    ("alice\ufe0f", "invisible characters", "alice-2"),  # variation selector-16
    ("alice\u3164", "invisible characters", "alice-2"),  # Hangul filler
    ("alice\u2800", "invisible characters", "alice-2"),  # braille pattern blank
    ("\uff41lice", "alice-2", "alice-2"),  # fullwidth a
    ("\U0001d41alice", "write a instead", "alice-2"),  # mathematical bold a
    ("Alice", "Alice-2", "Alice-2"),
    ("al\u0131ce", "al\u0131ce-2", "al\u0131ce-2"),  # dotless i
    ("a\u200dlice", "invisible characters", "alice-2"),  # zero-width joiner
    ("\u0391lice", "\u0391lice-2", "\u0391lice-2"),  # Greek capital alpha
    ("alice\u00ad", "invisible characters", "alice-2"),  # soft hyphen
]


def test_look_alikes_share_the_key_of_the_name_they_imitate() -> None:
    for look_alike, _, _ in LOOK_ALIKES:
        assert name_key(look_alike) == name_key("alice"), repr(look_alike)
    assert name_key(NFD_JOSE) == name_key(NFC_JOSE) == name_key("JOS\u00c9")
    assert name_key("b\u03bfb") == name_key("bob")  # Greek omicron
    assert name_key("bob") != name_key("bab")
    assert name_key("Иван") != name_key("ivan")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("alice\u034f", "U+034F COMBINING GRAPHEME JOINER"),
        ("alice\u2800", "U+2800 BRAILLE PATTERN BLANK"),
        ("al\u200bice", "U+200B ZERO WIDTH SPACE"),
        ("\U0001d41alice", "write a instead"),
        ("bob \U0001f389", "U+1F389 PARTY POPPER"),
        ("bob  smith", "two spaces in a row"),
        ("\u05e9\u05dc\u05d5\u05ddabc", "right-to-left"),
        ("alice ", "surrounding spaces"),
    ],
)
def test_refused_names_say_why_in_a_sentence(name: str, words: str) -> None:
    problem = name_problem(name, Limits())
    assert problem is not None and words in problem and problem.endswith(".")


@pytest.mark.parametrize(
    "name", ["alice", "Alice", NFC_JOSE, "Bob Smith", "Иван", "日本", "r2-d2", "a.b_c", ""]
)
def test_ordinary_names_are_fine(name: str) -> None:
    assert name_problem(name, Limits()) is None


def test_the_display_form_is_nfc_and_width_mapped_with_case_kept() -> None:
    assert display_form(NFD_JOSE) == NFC_JOSE
    assert display_form("\uff21lice") == "Alice"


@given(st.text(max_size=40))
def test_whatever_an_original_client_sends_is_cleaned_into_an_allowed_name(text: str) -> None:
    cleaned = clean_name(text, Limits())
    assert name_problem(cleaned, Limits()) is None
    if name_problem(text, Limits()) is None:
        assert cleaned == display_form(text)


def test_the_hub_keeps_names_unique_by_key_and_lists_display_names() -> None:
    h = Hub(Limits(rate_limit=0))
    h.join("lobby", "alice", FakeOutbox())
    twin = h.join("lobby", "\u0430lice", FakeOutbox())
    h.join("lobby", NFD_JOSE, FakeOutbox())
    assert twin.name == "\u0430lice-2"
    assert h.members_of("lobby") == ("alice", "\u0430lice-2", NFC_JOSE)
    h.leave(twin)
    assert h.join("lobby", "ALICE-2", FakeOutbox()).name == "ALICE-2"
    with pytest.raises(JoinRefused, match="invisible"):
        h.join("lobby", "alice\u034f", FakeOutbox())


async def _legacy_name(harness: Harness, user_id: str) -> str:
    """The name the server binds for an original-contract client sending user_id."""
    call, _ = await harness.legacy()
    await call.send(user_id, "hi")
    while (message := await call.receive()) is not None:
        if message.text == "hi":
            return str(message.user_id)
    raise AssertionError(f"call ended: {call.status}")


@pytest.mark.parametrize(("look_alike", "on_v1", "on_legacy"), LOOK_ALIKES)
async def test_look_alikes_beside_the_real_name_on_both_contracts(
    start_server, look_alike: str, on_v1: str, on_legacy: str
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        connection, _ = await harness.connection()
        call = V1Call(connection, authority="test")
        await call.join(look_alike, "lobby")
        frame = await call.receive()
        if frame is None:
            assert call.status is not None
            assert call.status.status_code is StatusCode.INVALID_ARGUMENT
            assert on_v1 in call.status.status_message, call.status.status_message
        else:
            assert frame.welcome.name == on_v1
            call.cancel()
            while (event := (await alice.next_of("event")).event).kind != v1.Event.LEAVE:
                pass
            assert event.user == on_v1
        assert await _legacy_name(harness, look_alike) == on_legacy
        assert alice.name == "alice"


async def test_nfd_and_nfc_are_one_name_on_both_contracts(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        jose = await harness.v1(NFC_JOSE)
        twin = await harness.v1(NFD_JOSE)
        assert await _legacy_name(harness, NFD_JOSE) == f"{NFC_JOSE}-3"
    assert (jose.name, twin.name) == (NFC_JOSE, f"{NFC_JOSE}-2")


def test_look_alikes_are_shown_apart_from_the_name_they_imitate() -> None:
    assert shown_name("\u0430lice-2") == "\\u0430lice-2"
    assert shown_name("al\u0131ce-2") == "al\\u0131ce-2"
    # Whatever reaches the client from a server that did not clean it: still told apart.
    for look_alike, _, _ in LOOK_ALIKES:
        if look_alike not in ("Alice", "\uff41lice", "\U0001d41alice"):
            line = plain_line(Shown("message", "lobby", "hi", user=look_alike, time_ms=1))
            assert not line.endswith("] alice: hi"), repr(look_alike)
    # Names in other scripts, and accents, are shown as they are.
    for name in ("Иван", NFC_JOSE, "日本", "Ana María"):
        assert shown_name(name) == name
    # An ASCII name spelling out an escape cannot pass for the escaped look-alike.
    assert shown_name("\\u0430lice") == "\\\\u0430lice" != shown_name("\u0430lice")


def test_token_file_names_follow_the_same_rule(tmp_path) -> None:
    path = tmp_path / "tokens"
    path.write_text("t1 \uff41lice\nt2 jose\u0301\n", encoding="utf-8")
    book = TokenBook(path)
    assert book.lookup("t1") == TokenEntry(b"t1", "alice")
    found = book.lookup("t2")
    assert found is not None and found.name == NFC_JOSE
    path.write_text("t1 alice\u034f\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match=r"line 1: Names cannot contain invisible"):
        book.load()


async def test_purechat_join_shows_a_look_alike_apart(start_server, nursery) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        await harness.v1("alice")
        server = f"127.0.0.1:{harness.port}"
        process = await start(nursery, "join", "--server", server, "--name", "\u0430lice")
        await send_lines(process, "hi", close=True)
        await process.wait()
        said = await Lines(process.stdout).rest()
    assert process.returncode == 0
    assert said[0] == "* \\u0430lice-2 joined"
    assert said[-1].endswith("] \\u0430lice-2: hi")
