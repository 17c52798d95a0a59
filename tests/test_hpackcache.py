"""Replayed first header blocks against hpack decoding them (purechat/transport/hpackcache.py)."""

from __future__ import annotations

from typing import Any

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from purechat.transport import FirstHeaderBlocks

_names = st.sampled_from([":path", ":authority", "user-agent", "te", "grpc-timeout", "x-a"])
_header_lists = st.lists(st.tuples(_names, st.text(max_size=30)), min_size=1, max_size=8)


def _table(decoder: hpack.Decoder) -> tuple[Any, ...]:
    table = decoder.header_table
    return (list(table.dynamic_entries), table._current_size, table.maxsize, table.resized)


@given(_header_lists, _header_lists, st.sampled_from([None, 0, 256, 4096]))
def test_replayed_blocks_leave_what_hpack_leaves(
    first: list[tuple[str, str]], second: list[tuple[str, str]], table_size: int | None
) -> None:
    blocks = FirstHeaderBlocks()
    for _ in range(3):  # the first connection decodes; the others replay
        encoder = hpack.Encoder()
        if table_size is not None:
            encoder.header_table_size = table_size  # a size update opens the block
        opening, later = encoder.encode(first), encoder.encode(second)
        plain, replaying = hpack.Decoder(), blocks.decoder()
        for block in (opening, later):
            assert replaying.decode(block, raw=True) == plain.decode(block, raw=True)
            assert _table(replaying) == _table(plain)


def test_a_block_that_fails_is_not_kept() -> None:
    blocks = FirstHeaderBlocks()
    broken = b"\xff\xff\xff\xff"  # an index far past any table
    for _ in range(2):
        with pytest.raises(hpack.HPACKError):
            blocks.decoder().decode(broken, raw=True)


def test_limits_are_part_of_what_a_block_means() -> None:
    blocks = FirstHeaderBlocks()
    block = hpack.Encoder().encode([("x-a", "y" * 100)])
    blocks.decoder().decode(block, raw=True)
    strict = blocks.decoder()
    strict.max_header_list_size = 50
    with pytest.raises(hpack.OversizedHeaderListError):
        strict.decode(block, raw=True)


def test_only_the_latest_blocks_are_kept() -> None:
    blocks = FirstHeaderBlocks(capacity=2)
    for n in range(5):
        blocks.decoder().decode(hpack.Encoder().encode([("x-a", str(n))]), raw=True)
    assert len(blocks._known) == 2


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("authorization", "Bearer s3cret")], id="credentials"),
        pytest.param([("x-a", "y" * 2000)], id="a large block"),
    ],
)
def test_credentials_and_large_blocks_are_not_kept(headers: list[tuple[str, str]]) -> None:
    blocks = FirstHeaderBlocks()
    block = hpack.Encoder().encode(headers)
    assert blocks.decoder().decode(block) == headers
    assert not blocks._known


def test_a_block_of_table_size_updates_alone_is_not_kept() -> None:
    blocks = FirstHeaderBlocks()
    blocks.decoder().decode(b"\x20" * 500, raw=True)
    assert not blocks._known
