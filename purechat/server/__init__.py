"""The chat over gRPC: the two contracts as doors into the core, the journal, the feed,
presence, and the gRPC listener. `purechat.app.ChatServer` runs it beside the web port."""

from purechat.server.config import ServerConfig
from purechat.server.grpc import GrpcListener, ServeError

__all__ = ["GrpcListener", "ServeError", "ServerConfig"]
