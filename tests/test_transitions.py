"""The state-machine table and the single-writer guard refuse what they must."""

from __future__ import annotations

import enum

import anyio
import pytest

from purechat.transitions import IllegalTransition, Transitions
from purechat.transport.guard import SingleWriter


class Light(enum.Enum):
    RED = "red"
    GREEN = "green"
    AMBER = "amber"


LIGHT = Transitions(
    "light", {Light.RED: [Light.GREEN], Light.GREEN: [Light.AMBER], Light.AMBER: [Light.RED]}
)


def test_legal_moves_and_staying_put_are_allowed() -> None:
    assert LIGHT.move(Light.RED, Light.GREEN) is Light.GREEN
    assert LIGHT.move(Light.AMBER, Light.AMBER) is Light.AMBER


def test_an_illegal_move_raises_with_both_states_named() -> None:
    with pytest.raises(IllegalTransition, match="light: RED -> AMBER"):
        LIGHT.move(Light.RED, Light.AMBER)


def test_a_table_must_say_where_every_state_may_go() -> None:
    with pytest.raises(ValueError, match="AMBER"):
        Transitions("broken", {Light.RED: [Light.AMBER]})


def test_a_second_writer_raises_instead_of_interleaving() -> None:
    guard = SingleWriter()
    with guard:
        assert guard.busy
        with pytest.raises(anyio.BusyResourceError), guard:
            pass
    assert not guard.busy
    with guard:  # free again after the first write ended
        pass
