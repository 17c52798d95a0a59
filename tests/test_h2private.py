"""The one module that reaches into h2, hpack and purerpc: its version check, and what
it relies on in purerpc (the byte-level moves are pinned by test_h2fast.py and
test_hpackcache.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from purerpc.grpclib.connection import GRPCConfiguration, GRPCConnection

from purechat.errors import PurechatError
from purechat.transport import GrpcProtocol, TransportLimits, h2private

ROOT = Path(__file__).resolve().parent.parent
REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/a/b"), (":authority", "x"),
           ("te", "trailers"), ("content-type", "application/grpc")]  # fmt: skip


def test_pyproject_declares_the_ranges_the_module_checks() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ranges = {}
    for requirement in declared:
        named = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement)
        assert named is not None, requirement
        ranges[named[1].lower()] = named[2].replace(" ", "")
    for name, (lowest, beyond) in h2private.PINNED.items():
        assert ranges.get(name) == f">={lowest},<{beyond}", name


@pytest.mark.parametrize(
    ("name", "version"), [("h2", "4.1.0"), ("hpack", "2.3.0"), ("purerpc", "0.9.0rc1")]
)
def test_an_unpinned_version_is_refused_with_a_sentence(name: str, version: str) -> None:
    installed = {"h2": "3.2.0", "hpack": "3.0.0", "purerpc": "0.8.0", name: version}
    with pytest.raises(PurechatError) as refused:
        h2private.check_versions(installed)
    sentence = str(refused.value)
    assert f"{name} {version} is installed" in sentence
    assert "Traceback" not in sentence and sentence.endswith(".")


def test_the_versions_in_the_pinned_ranges_pass() -> None:
    h2private.check_versions({"h2": "3.2.0", "hpack": "3.0.0", "purerpc": "0.8.5"})


def test_purerpc_still_has_the_handlers_the_adapter_calls() -> None:
    """A purerpc that renames a private handler fails here, not on a live call."""
    for handler in ("_request_received", "_response_received", "_trailers_received",
                    "_data_received", "_window_updated", "_remote_settings_changed",
                    "_stream_ended", "_set_h2_connection_local_settings"):  # fmt: skip
        assert callable(getattr(GRPCConnection, handler)), handler
    for hook in h2private._HOOKS.values():
        assert callable(getattr(h2private.GrpcConnection, hook)), hook


def test_our_settings_are_what_purerpcs_constructor_announces() -> None:
    limits = TransportLimits(max_concurrent_streams=7)
    settings = GrpcProtocol(client_side=False, limits=limits).h2_connection.local_settings
    assert isinstance(settings, h2private.CompactSettings)
    assert settings.max_concurrent_streams == 7
    assert settings.initial_window_size == limits.stream_window


def test_a_request_translates_as_purerpc_translates_it() -> None:
    """The adapter's dispatch of h2 events against purerpc's own receive_data."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, REQUEST)
    client.send_data(1, b"\x00\x00\x00\x00\x02hi", end_stream=True)
    data = client.data_to_send()
    ours = h2private.GrpcConnection(GRPCConfiguration(client_side=False))
    theirs = GRPCConnection(GRPCConfiguration(client_side=False))
    translated = [
        grpc for event in ours.h2_connection.receive_data(data) for grpc in ours.translate(event)
    ]
    plain = theirs.receive_data(data)
    kinds = [type(event).__name__ for event in plain]
    assert kinds == ["WindowUpdated", "RequestReceived", "MessageReceived", "RequestEnded"]
    assert [type(event).__name__ for event in translated] == kinds
    assert [vars(event) for event in translated] == [vars(event) for event in plain]


def test_windows_and_state_read_as_h2_says() -> None:
    server = GrpcProtocol(client_side=False)
    server.initiate_connection()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, REQUEST)
    server.receive_data(client.data_to_send(), 0.0)
    windows = server.send_windows(1)
    assert windows is not None
    assert min(windows) == server.h2_connection.local_flow_control_window(1)
    assert server.send_windows(3) is None
    assert server.peer_initial_window() == server.h2_connection.remote_settings.initial_window_size
    assert not server.closed()
    server.h2_connection.close_connection()
    assert server.closed()


def test_the_transport_refuses_to_load_on_an_unpinned_h2() -> None:
    """The check runs when the transport is imported, before anything reaches in."""
    loads = "import h2; h2.__version__ = '4.1.0'; import purechat.transport"
    result = subprocess.run(
        [sys.executable, "-c", loads], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "UnpinnedVersion: purechat reaches into h2's internals" in result.stderr
    assert "h2 4.1.0 is installed" in result.stderr


def test_the_purechat_command_says_an_unpinned_h2_in_one_sentence() -> None:
    """A person running `purechat` with the wrong h2 reads the fix, not a traceback."""
    runs = (
        "import sys, h2; h2.__version__ = '4.1.0'; from purechat.entry import main; "
        "sys.exit(main(['serve', '--help']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", runs], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("purechat: purechat reaches into h2's internals")
    assert "pip install 'h2>=3.2,<3.3'" in result.stderr
    assert "Traceback" not in result.stderr
