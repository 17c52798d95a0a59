"""purechat: a chat server and terminal client over gRPC bidirectional streaming."""

__version__ = "0.1.0"
