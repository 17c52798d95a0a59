"""The standard gRPC services' messages, from purechat's own descriptor pool.

grpcio's health and reflection packages register the same .proto file names in
protobuf's default pool; keeping ours in a pool of its own lets both live in one
process (our tests run grpcio's clients beside the server).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SET_NAME = "standard_services.binpb"


@cache
def pool() -> descriptor_pool.DescriptorPool:
    """Built once per process from the committed descriptor set (read-only after)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(
        resources.files("purechat.pb").joinpath(SET_NAME).read_bytes()
    )
    built = descriptor_pool.DescriptorPool()
    for file in files.file:
        built.Add(file)
    return built


def message_class(full_name: str) -> Any:
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(full_name))
