"""Server reflection (grpc.reflection.v1 and v1alpha): tools discover purechat's services
and message types without its .proto files."""

from __future__ import annotations

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from purechat.ops.standard import message_class, pool

# Imported for their side effect: purechat's own files enter the default pool, where
# reflection looks them up.
from purechat.pb import chat_pb2, purechat_v1_pb2  # noqa: F401
from purechat.transport import Stream, frame_message
from purechat.transport import status as statuses
from purechat.transport.status import Status

VERSIONS = ("grpc.reflection.v1", "grpc.reflection.v1alpha")
NOT_FOUND = 5


class Reflection:
    def __init__(self, services: list[str]):
        self.services = sorted(services)

    async def serve(self, stream: Stream, version: str) -> Status:
        request_type = message_class(f"{version}.ServerReflectionRequest")
        response_type = message_class(f"{version}.ServerReflectionResponse")
        stream.start_response()
        while (raw := await stream.receive()) is not None:
            request = request_type.FromString(raw)
            response = response_type(original_request=request, valid_host=request.host)
            self._answer(request, response)
            await stream.send_frames(frame_message(response.SerializeToString()))
        return statuses.OK

    def _answer(self, request: object, response: object) -> None:
        kind = request.WhichOneof("message_request")  # type: ignore[attr-defined]
        files: list[FileDescriptor] | None = None
        if kind == "list_services":
            for name in self.services:
                response.list_services_response.service.add(name=name)  # type: ignore[attr-defined]
            return
        if kind == "file_by_filename":
            files = _find(lambda p: p.FindFileByName(request.file_by_filename))  # type: ignore[attr-defined]
        elif kind == "file_containing_symbol":
            symbol = request.file_containing_symbol  # type: ignore[attr-defined]
            files = _find(lambda p: p.FindFileContainingSymbol(symbol))
        if not files:
            response.error_response.error_code = NOT_FOUND  # type: ignore[attr-defined]
            response.error_response.error_message = f"not found: {kind}"  # type: ignore[attr-defined]
            return
        found = response.file_descriptor_response.file_descriptor_proto  # type: ignore[attr-defined]
        found.extend(file.serialized_pb for file in _with_dependencies(files[0]))


def _find(lookup: object) -> list[FileDescriptor] | None:
    for each in (descriptor_pool.Default(), pool()):
        try:
            return [lookup(each)]  # type: ignore[operator]
        except KeyError:
            continue
    return None


def _with_dependencies(file: FileDescriptor) -> list[FileDescriptor]:
    ordered: list[FileDescriptor] = []
    stack = [file]
    while stack:
        current = stack.pop()
        if current not in ordered:
            ordered.append(current)
            stack.extend(current.dependencies)
    return ordered
