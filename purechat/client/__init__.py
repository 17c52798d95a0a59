"""The purechat client: calls over our transport, pipe mode, the interactive UI, and a
Python API for bots (`connect`, in api.py)."""

from purechat.client.api import Chat, Event, Receipt, SendRefused, connect

__all__ = ["Chat", "Event", "Receipt", "SendRefused", "connect"]
