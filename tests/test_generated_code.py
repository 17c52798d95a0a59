"""The generated protobuf code in purechat/pb is exactly what proto/ produces.

Wheels ship purechat/pb as committed (nothing is generated at build time), so this
also holds for what `pip install .` puts in place.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("suffix", ["_pb2.py", "_pb2.pyi"])
def test_committed_code_matches_proto(tmp_path: Path, suffix: str) -> None:
    generator = _generator()
    generator.generate(tmp_path)
    for proto in generator.PROTO_FILES:
        name = proto.removesuffix(".proto") + suffix
        fresh = (tmp_path / name).read_text()
        committed = (ROOT / "purechat" / "pb" / name).read_text()
        assert committed == fresh, f"purechat/pb/{name} is stale: run `just proto`"


def test_committed_standard_services_match_proto(tmp_path: Path) -> None:
    generator = _generator()
    generator.generate(tmp_path)
    name = generator.STANDARD_SET
    fresh = (tmp_path / name).read_bytes()
    assert (ROOT / "purechat" / "pb" / name).read_bytes() == fresh, f"{name} is stale"
