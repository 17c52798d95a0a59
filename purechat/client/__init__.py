"""The purechat client: calls over our transport, pipe mode, the interactive UI, and a
Python API for bots (`connect`, in api.py; `login`, in login.py)."""

from purechat.client.api import (
    Chat,
    Conversation,
    Event,
    Found,
    HistoryPage,
    Receipt,
    SearchPage,
    SendRefused,
    connect,
)
from purechat.client.login import Login, LoginFailed, login

__all__ = [
    "Chat",
    "Conversation",
    "Event",
    "Found",
    "HistoryPage",
    "Login",
    "LoginFailed",
    "Receipt",
    "SearchPage",
    "SendRefused",
    "connect",
    "login",
]
