"""A new connection's first header block, decoded once for every connection that sends it.

Every HTTP/2 connection starts with an empty HPACK table, and clients of one kind open
their first call with the very same bytes (grpc-go's tutorial client does, connection
after connection). h2 decodes them anew each time, Huffman coding in Python, which was
a sixth of the server's work per join. With the table empty, what a block decodes to
and what it leaves in the table depend only on its bytes and the decoder's limits, so
the first decoding is kept and replayed: the same headers, the same table after. A
block that fails to decode is never kept, nor one larger than MAX_KEPT_BLOCK, nor one
with no headers or with credentials (a token is not kept past the connection that
sent it); any later block, whose meaning depends on the table, is decoded as always.

tests/test_hpackcache.py decodes each block both ways and compares headers and tables,
so an hpack upgrade that changes what is replayed here fails there. The table itself is
read and written by h2private.py, which holds every reach into hpack's internals.
"""

from __future__ import annotations

from typing import Any

import hpack

from purechat.transport.h2private import TableSnapshot, table_is_fresh

# (the block, raw, max_header_list_size, max_allowed_table_size)
_Key = tuple[bytes, bool, int, int]
# Largest block kept: a client's first request is a few dozen bytes; a peer must not
# make the cache hold megabytes (a block may run to h2's 64 CONTINUATION frames).
MAX_KEPT_BLOCK = 1024


class _Decoded:
    __slots__ = ("headers", "table")

    def __init__(self, headers: list[Any], decoder: hpack.Decoder):
        self.headers = tuple(headers)
        self.table = TableSnapshot(decoder)


class FirstHeaderBlocks:
    """The last `capacity` distinct first header blocks, decoded; one per server."""

    def __init__(self, capacity: int = 64):
        self._known: dict[_Key, _Decoded] = {}
        self._capacity = capacity

    def decoder(self) -> hpack.Decoder:
        """A decoder for a new connection that replays known first blocks."""
        return _ReplayingDecoder(self)

    def _find(self, key: _Key) -> _Decoded | None:
        return self._known.get(key)

    def _keep(self, key: _Key, decoded: _Decoded) -> None:
        if len(self._known) >= self._capacity:
            del self._known[next(iter(self._known))]  # the oldest
        self._known[key] = decoded


class _ReplayingDecoder(hpack.Decoder):  # type: ignore[misc]
    def __init__(self, blocks: FirstHeaderBlocks):
        super().__init__()
        self._blocks: FirstHeaderBlocks | None = blocks

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:
        if self._blocks is None or not table_is_fresh(self):
            return super().decode(data, raw)  # type: ignore[no-any-return]
        # Only a connection's first block is ever looked up: the table is used after.
        blocks, self._blocks = self._blocks, None
        key = (bytes(data), raw, self.max_header_list_size, self.max_allowed_table_size)
        known = blocks._find(key)
        if known is None:
            headers: list[Any] = super().decode(data, raw)
            if _worth_keeping(data, headers):
                blocks._keep(key, _Decoded(headers, self))
            return headers
        known.table.restore(self)
        return list(known.headers)


def _worth_keeping(data: bytes, headers: list[Any]) -> bool:
    return (
        0 < len(data) <= MAX_KEPT_BLOCK
        and bool(headers)
        and not any(_name(name) == "authorization" for name, _ in headers)
    )


def _name(name: bytes | str) -> str:
    return (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
