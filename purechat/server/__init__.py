"""The purerpc-based chat server: transport adapters around the core."""

from purechat.server.config import ServerConfig
from purechat.server.server import ChatServer, ServeError

__all__ = ["ChatServer", "ServeError", "ServerConfig"]
