"""grpc.health.v1.Health: SERVING while the server serves and its store answers."""

from __future__ import annotations

import anyio

from purechat.ops.standard import message_class
from purechat.transport import Stream, frame_message
from purechat.transport import status as statuses
from purechat.transport.status import Status, StatusCode

HEALTH_SERVICE = "grpc.health.v1.Health"
SERVING, NOT_SERVING, SERVICE_UNKNOWN = 1, 2, 3


class HealthState:
    """One status for the whole server; watchers hear every change."""

    def __init__(self, services: frozenset[str]):
        self.services = services | {""}
        self._store_ok = True
        self._shutting_down = False
        self._changed = anyio.Event()

    @property
    def status(self) -> int:
        return SERVING if self._store_ok and not self._shutting_down else NOT_SERVING

    def store_answered(self, ok: bool) -> None:
        if ok != self._store_ok:
            self._store_ok = ok
            self._notify()

    def shutting_down(self) -> None:
        self._shutting_down = True
        self._notify()

    async def changed(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def _response(status: int) -> bytes:
    response = message_class("grpc.health.v1.HealthCheckResponse")(status=status)
    return frame_message(response.SerializeToString())


async def _service_asked(stream: Stream) -> str | None:
    raw = await stream.receive()
    if raw is None:
        return None
    request = message_class("grpc.health.v1.HealthCheckRequest").FromString(raw)
    return str(request.service)


async def check(stream: Stream, health: HealthState) -> Status:
    service = await _service_asked(stream)
    if service is None:
        return statuses.one_request_expected("Check", "HealthCheckRequest")
    if service not in health.services:
        return unknown_service(service)
    stream.start_response()
    await stream.send_frames(_response(health.status))
    return statuses.OK


async def watch(stream: Stream, health: HealthState) -> Status:
    """The current status, then each change, until the client goes away."""
    service = await _service_asked(stream)
    if service is None:
        return statuses.one_request_expected("Watch", "HealthCheckRequest")
    stream.start_response()
    if service not in health.services:
        await stream.send_frames(_response(SERVICE_UNKNOWN))
        await anyio.sleep_forever()
    while True:
        sent = health.status
        await stream.send_frames(_response(sent))
        while health.status == sent:
            await health.changed()


def unknown_service(service: str) -> Status:
    return Status(StatusCode.NOT_FOUND, f"unknown service {service!r}")
