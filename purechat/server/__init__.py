"""The purerpc-based chat server: transport adapters around the core."""

from purechat.server.server import ChatServer, ServeError, ServerConfig

__all__ = ["ChatServer", "ServeError", "ServerConfig"]
