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


def generate(out_dir: Path) -> None:
    """Write <name>_pb2.py and .pyi for every file in PROTO_FILES into out_dir."""
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


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR)
