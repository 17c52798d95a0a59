"""gRPC over HTTP/2 for purechat, built on purerpc's protocol pieces.

We use purerpc's sans-I/O `GRPCConnection` (h2 plus gRPC framing and headers) and
replace the layers above it, which get structure wrong for a server people depend on:
its server catches everything with bare `except` (cancellation included), binds with
SO_REUSEPORT (two servers silently share a port), takes no host to bind, buffers
incoming events without bound, hands every HTTP/2 event over with an awaited send
(one message per scheduler pass), and has no graceful shutdown. Here every
connection is a task group owning its reader, its writer and its calls.
"""

from purechat.transport.connection import Connection
from purechat.transport.flusher import Flusher
from purechat.transport.framing import frame_message
from purechat.transport.hpackcache import FirstHeaderBlocks
from purechat.transport.protocol import GrpcProtocol, TransportLimits
from purechat.transport.status import Status, StatusCode
from purechat.transport.stream import Stalled, Stream, StreamGone, StreamState

__all__ = [
    "Connection",
    "FirstHeaderBlocks",
    "Flusher",
    "GrpcProtocol",
    "Stalled",
    "Status",
    "StatusCode",
    "Stream",
    "StreamGone",
    "StreamState",
    "TransportLimits",
    "frame_message",
]
