"""Regenerate purechat/pb from the .proto files beside this script.

Run as `just proto`. tests/test_generated_code.py calls `generate` into a temporary
folder and compares, so committed code that drifts from proto/ fails the suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = PROTO_DIR.parent / "purechat" / "pb"
PROTO_FILES = ("chat.proto", "purechat_v1.proto")
# The standard gRPC services purechat serves. They go into a descriptor set loaded into
# a pool of purechat's own, not into generated modules: grpcio's health and reflection
# packages register the same file names in protobuf's default pool.
STANDARD_FILES = (
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
)
STANDARD_SET = "standard_services.binpb"


def generate(out_dir: Path) -> None:
    """Write <name>_pb2.py and .pyi for PROTO_FILES, and STANDARD_SET, into out_dir."""
    from grpc_tools import protoc  # noqa: PLC0415 -- a dev dependency, needed only here

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PROTO_FILES:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTO_DIR}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                str(PROTO_DIR / name),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {name} (exit status {status})")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--descriptor_set_out={out_dir / STANDARD_SET}",
            *(str(PROTO_DIR / name) for name in STANDARD_FILES),
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed on the standard services (exit status {status})")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR)
