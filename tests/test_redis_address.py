"""Redis URLs (one Redis, a cluster, how durable a send is) and how glide's errors are
read: the parts of the Redis store that need no Redis."""

from __future__ import annotations

import glide
import pytest

from purechat.errors import StoreError
from purechat.store.redis import _not_run
from purechat.store.redis_address import RedisAddress
from purechat.store.redis_keys import Layout, key_slot, room_tag


def test_a_cluster_url_names_its_nodes_and_how_many_replicas_a_send_waits_for() -> None:
    address = RedisAddress.parse("rediss+cluster://app:s3cret@[::1]:7000,10.0.0.2:7001?replicas=1")
    assert address.nodes == (("::1", 7000), ("10.0.0.2", 7001))
    assert (address.cluster, address.tls, address.replicas) == (True, True, 1)
    assert (address.username, address.password) == ("app", "s3cret")
    assert address.where == "[::1]:7000,10.0.0.2:7001"
    single = RedisAddress.parse("redis://127.0.0.1:6379/2?replicas=2")
    assert (single.cluster, single.database, single.replicas) == (False, 2, 2)


@pytest.mark.parametrize(
    ("url", "sentence"),
    [
        ("redis+cluster://a:7000,b", "every cluster node needs its port ('b')"),
        ("redis://a:1,b:2", "several nodes are for redis+cluster:// only"),
        ("redis+cluster://a:7000/3", "a Redis Cluster has database 0 only"),
        ("redis+cluster://:pw@a:7000?replicas=two", "replicas must be a number from 0 to 5"),
        ("redis://a:1?replicas=9", "replicas must be a number from 0 to 5"),
        ("redis+cluster://a:7000?ssl_ca_certs=ca.pem", "ssl_ca_certs needs rediss://"),
        ("redis+cluster://a:7000?tls=1", "the only options a Redis URL takes are"),
        ("cluster://a:1", "is not redis://HOST:PORT[/DB], rediss://..., redis+cluster://"),
    ],
)
def test_a_malformed_url_is_a_sentence_without_its_password(url: str, sentence: str) -> None:
    with pytest.raises(StoreError) as refused:
        RedisAddress.parse(url)
    assert sentence in str(refused.value)
    assert "pw@" not in str(refused.value)


def test_a_rooms_hash_tag_is_its_name_and_no_name_can_end_it_early() -> None:
    layout = Layout(cluster=True)
    assert layout.room("lobby").log == "purechat:room:{lobby}:log"
    assert key_slot("purechat:room:{lobby}:log") == key_slot("lobby") == layout.slot_of("lobby")
    # What `redis-cli cluster keyslot lobby` says (CRC16 of "lobby" mod 16384).
    assert key_slot("lobby") == 10294
    for room in ("a}b", "{x}", "}", "100%", "%7D"):
        keys = layout.room(room)
        assert {key_slot(k) for k in (keys.log, keys.seq, keys.held("s"))} == {
            key_slot(room_tag(room, cluster=True))
        }
    assert len({room_tag(r, cluster=True) for r in ("a}b", "a%7Db", "{", "%7B")}) == 4
    assert Layout(cluster=False).room("lobby").log == "purechat:room:lobby:log"  # as before


@pytest.mark.parametrize(
    ("error", "not_run"),
    [
        (
            glide.RequestError("An error was signalled by the server: - TryAgain: Multiple keys"),
            True,
        ),
        (glide.RequestError("An error was signalled by the server: - Moved: 5463 h:1"), True),
        (
            glide.RequestError("An error was signalled by the server: - ClusterDown: hash slot"),
            True,
        ),
        (
            glide.ConnectionError("Requested connection not found - ConnectionNotFoundForRoute"),
            True,
        ),
        (glide.TimeoutError("timed out"), False),
        (glide.ConnectionError("Failed to receive command response. RecvError(())"), False),
        (glide.RequestError("Script attempted to access a non local key in a cluster node"), False),
    ],
)
def test_only_what_redis_surely_did_not_run_is_sent_again(error: Exception, not_run: bool) -> None:
    assert _not_run(error) is not_run
