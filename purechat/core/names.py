"""Names people can trust: which names are allowed, their display form, and when two
names are the same name.

The rule, pure and without I/O, used wherever a name is bound (both contracts, token
files) and wherever uniqueness is checked (a room here, every room in Redis):

- **Allowed**: the PRECIS `UsernameCasePreserved` profile (RFC 8264, RFC 8265 as
  implemented by precis-i18n) applied to each space-separated part, as RFC 8265 §3.5
  allows: letters, digits and printable ASCII; no symbols, invisible characters or
  compatibility characters (mathematical bold a must be written a). Invisible and default-ignorable
  characters (joiners, variation selectors, Hangul fillers, the braille blank, spaces
  other than U+0020) are refused with a sentence of their own.
- **Displayed** (`display_form`): what the profile makes of it: NFC, fullwidth and
  halfwidth letters mapped to their ordinary forms (fullwidth alice is alice), case kept.
- **The same name** (`name_key`): equal keys for names a person cannot tell apart:
  NFKC, case folding and the skeleton of Unicode TS #39 (each character replaced by its
  prototype in the Unicode confusables data, which confusable-homoglyphs ships), so
  alice with a Cyrillic a, Alice and alice share one key, as IRC servers such as ergo do.

Original-contract clients send any user_id; `clean_name` makes an allowed name of it
instead of refusing (what cannot be mapped is dropped).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

import precis_i18n
import precis_i18n.profile
from precis_i18n.unicode import UnicodeData

from purechat.core.limits import Limits

# Characters that show as blank but are neither spaces nor default-ignorable.
_BLANKS = frozenset("\u2800\U0001d159")  # BRAILLE PATTERN BLANK, MUSICAL SYMBOL NULL NOTEHEAD
# confusable-homoglyphs keeps right-to-left characters wrapped in LEFT-TO-RIGHT MARKs
# (as confusables.txt shows them in its comments); they are not part of the characters.
_LRM = "\u200e"


@functools.cache
def _profile() -> precis_i18n.profile.Profile:
    return precis_i18n.get_profile("UsernameCasePreserved")


@functools.cache
def _unicode() -> UnicodeData:
    return UnicodeData()


def is_invisible(ch: str) -> bool:
    """True for characters that show nothing (or a blank) where they stand."""
    if ch == " ":
        return False
    category = unicodedata.category(ch)
    return (
        category in ("Zs", "Zl", "Zp", "Cf")
        or ch in _BLANKS
        or _unicode().default_ignorable(ord(ch))
    )


def _visible(text: str) -> list[str]:
    """The space-separated parts of text once spaces of every kind are U+0020 and
    invisible and control characters are gone."""
    kept = []
    for ch in text:
        if unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            kept.append(" ")
        elif not is_invisible(ch) and unicodedata.category(ch) != "Cc":
            kept.append(ch)
    return "".join(kept).split()


def _describe(ch: str) -> str:
    """`U+034F COMBINING GRAPHEME JOINER`: a character named so a person can find it."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}".rstrip()


def _enforce(name: str) -> str:
    """The profile applied to each space-separated part; UnicodeEncodeError if refused."""
    profile = _profile()
    return " ".join(profile.enforce(part) for part in name.split(" "))


def name_problem(name: str, limits: Limits) -> str | None:
    """Why a member name is unacceptable, as a sentence, or None when it is fine.

    An empty name is fine: the server then names the member (guest).
    """
    if not name:
        return None
    if len(unicodedata.normalize("NFC", name)) > limits.max_name_chars:
        return f"Names are at most {limits.max_name_chars} characters."
    if name != name.strip() or any(unicodedata.category(ch) == "Cc" for ch in name):
        return "Names cannot contain control characters or surrounding spaces."
    if hidden := next((ch for ch in name if is_invisible(ch)), None):
        return f"Names cannot contain invisible characters (this one has {_describe(hidden)})."
    if "  " in name:
        return "Names cannot have two spaces in a row."
    try:
        _enforce(name)
    except UnicodeEncodeError as refused:
        return _sentence(refused)
    return None


def _sentence(refused: UnicodeEncodeError) -> str:
    reason = refused.reason.removeprefix("DISALLOWED/")
    if reason == "bidi_rule":
        return (
            "Names with right-to-left letters must begin with one and cannot mix in "
            "left-to-right letters, so that they read the same everywhere."
        )
    if refused.start < 0 or refused.start >= len(refused.object):
        return "Names must be made of letters, digits and ASCII punctuation."
    ch = refused.object[refused.start]
    plain = unicodedata.normalize("NFKC", ch)
    if reason == "has_compat" and plain != ch and plain.isprintable():
        return f"Names cannot contain {ch} ({_describe(ch)}); write {plain} instead."
    return (
        f"Names cannot contain {ch} ({_describe(ch)}): use letters, digits and ASCII punctuation."
    )


def display_form(name: str) -> str:
    """The form an allowed name is shown in: NFC, width-mapped, case kept."""
    return _enforce(name) if name else name


def clean_name(requested: str, limits: Limits) -> str:
    """An allowed name made out of whatever an original-contract client sent (may be
    empty): compatibility characters mapped (mathematical bold a to a), invisible and
    disallowed ones dropped, cut to the longest name allowed."""
    if name_problem(requested, limits) is None:
        return display_form(requested)
    parts = [_clean_part(part) for part in _visible(unicodedata.normalize("NFKC", requested))]
    cleaned = " ".join(part for part in parts if part)[: limits.max_name_chars].strip()
    if name_problem(cleaned, limits) is not None:
        # Cut where the bidi rule or a combining sequence needs more: keep the ASCII.
        cleaned = " ".join("".join(ch for ch in cleaned if ch.isascii()).split())
    return display_form(cleaned) if name_problem(cleaned, limits) is None else ""


def _clean_part(part: str) -> str:
    """One space-free part with the characters the profile refuses dropped."""
    for _ in range(len(part) + 1):
        try:
            return _profile().enforce(part) if part else ""
        except UnicodeEncodeError as refused:
            if not 0 <= refused.start < len(refused.object):
                return "".join(ch for ch in part if ch.isascii())
            part = refused.object[: refused.start] + refused.object[refused.start + 1 :]
    return ""


def prepare() -> None:
    """Load the confusables data now (~100 ms, ~6 MB): a server does it before it
    listens, so its first join does not wait for it."""
    _prototypes()


@functools.lru_cache(maxsize=16384)  # the same names come and go: joins, leaves, suffixes
def name_key(name: str) -> str:
    """Equal for names a person cannot tell apart (alice, Alice, alice with a Cyrillic,
    fullwidth or bold a, alice with a joiner): what uniqueness is checked on, never shown.

    Invisible characters dropped, then NFKC with case folding and the TS #39 skeleton,
    repeated until nothing changes (a prototype may be upper case, or fold further).
    """
    text = " ".join(_visible(name))
    prototypes = _prototypes()
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        decomposed = unicodedata.normalize("NFD", folded)
        skeleton = unicodedata.normalize(
            "NFD", "".join(prototypes.get(ch, ch) for ch in decomposed)
        )
        if skeleton == text:
            break
        text = skeleton
    return text


def distinguishable(name: str) -> str:
    """A name as shown to people, so that a look-alike cannot pass for the name it imitates.

    Invisible characters (joiners, variation selectors, blanks) are escaped, and so are
    characters outside ASCII that pass for ASCII ones (Cyrillic a, dotless i: by the
    Unicode confusables data) in any name that has ASCII letters or is made only of
    such characters: alice with a Cyrillic a reads `\\u0430lice`. A name in another
    script (Иван, josé, 日本) is shown as it is. A backslash is shown doubled, so the
    ASCII name `\\u0430lice` cannot pass for the escaped Cyrillic one. `purechat join`
    and the web page both show names this way.
    """
    name = name.replace("\\", "\\\\")
    if name.isascii():
        return name
    hidden = {ch for ch in name if is_invisible(ch) and ch != " "}
    latin = any(ch.isascii() and ch.isalpha() for ch in name)
    own = any(ch.isalpha() and not ch.isascii() and not looks_ascii(ch) for ch in name)
    if latin or not own:
        hidden |= {ch for ch in name if looks_ascii(ch)}
    return "".join(_escape_code(ch) if ch in hidden else ch for ch in name)


def _escape_code(ch: str) -> str:
    code = ord(ch)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@functools.lru_cache(maxsize=4096)
def looks_ascii(ch: str) -> bool:
    """True for a character outside ASCII that can be taken for ASCII (Cyrillic a, dotless i)."""
    if ch.isascii():
        return False
    return name_key(ch).isascii() and bool(name_key(ch).strip())


@functools.cache
def _prototypes() -> Mapping[str, str]:
    """Character -> prototype, from the Unicode confusables data.

    confusable-homoglyphs keeps confusables.txt's pairs in both directions. Each source
    there is one code point with one prototype, and prototypes are no one's source, so
    every group is a star: a source has one neighbour, its prototype. Where a group is
    a single pair of single characters, which way it went is lost; either way gives
    the same skeleton equality, so the later code point maps to the earlier.
    """
    from confusable_homoglyphs.confusables import (  # noqa: PLC0415 -- 100 ms, when first needed
        confusables_data,
    )

    near: dict[str, set[str]] = {}
    for char, entries in confusables_data.items():
        source = char.replace(_LRM, "")
        for entry in entries:
            target = entry["c"].replace(_LRM, "")
            near.setdefault(source, set()).add(target)
            near.setdefault(target, set()).add(source)
    table: dict[str, str] = {}
    for char, others in near.items():
        if len(char) != 1 or len(others) != 1:
            continue
        (other,) = others
        if len(near[other]) > 1 or len(other) > 1 or other < char:
            table[char] = other
    return MappingProxyType(table)
