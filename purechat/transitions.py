"""State machines that refuse illegal moves, with the legal ones in one table.

h11 keeps a connection's states and the moves between them in one table
(`h11/_state.py`) and raises on a move the table does not hold; a state kept as an
enum plus booleans that must agree hides exactly the bugs a table shows. Each of
purechat's stateful objects (a member's delivery, a gRPC stream, a connection's
writer, a WebSocket) declares its table with `Transitions` and moves only through
`move`, so a move its author never meant raises `IllegalTransition` at the place it
happens instead of being ignored. Staying in the same state is always allowed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from purechat.errors import PurechatError

S = TypeVar("S", bound=enum.Enum)


class IllegalTransition(PurechatError):
    """A state machine was asked for a move its table does not hold: a bug."""


class Transitions(Generic[S]):
    """The legal moves of one kind of state machine (see the module docstring)."""

    def __init__(self, name: str, table: Mapping[S, Iterable[S]]):
        self.name = name
        self._table: dict[S, frozenset[S]] = {state: frozenset(to) for state, to in table.items()}
        states = {state for state in self._table} | {s for to in self._table.values() for s in to}
        missing = states - set(self._table)
        if missing:
            raise ValueError(f"{name}: no moves given for {sorted(s.name for s in missing)}")

    def move(self, current: S, new: S) -> S:
        """new, when the table allows current -> new; IllegalTransition otherwise."""
        if new is not current and new not in self._table[current]:
            raise IllegalTransition(
                f"{self.name}: {current.name} -> {new.name} is not a legal move"
            )
        return new

    def allows(self, current: S, new: S) -> bool:
        return new is current or new in self._table[current]
