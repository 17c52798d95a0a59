"""gRPC status codes, re-exported from purerpc so the rest of purechat names one place."""

from purerpc.grpclib.status import Status, StatusCode

__all__ = ["Status", "StatusCode"]
