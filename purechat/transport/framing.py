"""gRPC length-prefixed message framing."""

import struct

_PREFIX = struct.Struct(">BI")


def frame_message(payload: bytes) -> bytes:
    """Frame one uncompressed message: flag byte 0, 4-byte big-endian length, payload."""
    return _PREFIX.pack(0, len(payload)) + payload
