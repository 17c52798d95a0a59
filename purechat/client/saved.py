"""Sessions kept by `purechat login`: one file per server, readable by the user alone.

`purechat login --server ADDR NAME` asks the server for a session token and keeps it
here, in the user's state directory (`$XDG_STATE_HOME/purechat/sessions/`, as
platformdirs finds it), one small JSON file per server address, so that `purechat
join`, `post`, `who`, `rooms`, `mod`, `admin` and the Python API's `connect` use it for
that server without being told. A token given explicitly (`--token`, PURECHAT_TOKEN,
`token=`) wins over a saved one.

A token is a password for as long as it lasts: its file is created with mode 0600 in a
directory of mode 0700, written to a temporary file beside it and renamed over the old
one (atomic: a reader sees the old session or the new one, never half of one), and
never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from platformdirs import user_state_path

from purechat.client.session import Address
from purechat.errors import ClientError

__all__ = ["Saved", "SavedSessions", "SessionFileError"]


class SessionFileError(ClientError):
    """A saved session cannot be written or read; str() is a sentence."""


@dataclass(frozen=True, slots=True)
class Saved:
    """A session kept for one server."""

    server: str
    token: str
    account: str
    expires_ms: int


class SavedSessions:
    """The saved sessions of this user (`folder`: the state directory's, unless told)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or user_state_path("purechat", appauthor=False) / "sessions"

    def path(self, server: Address) -> Path:
        """The file of one server's session (its address, quoted to be a file name)."""
        return self.folder / (quote(str(server), safe="[].-") + ".json")

    def save(self, saved: Saved, server: Address) -> Path:
        """Keep saved for server, replacing any session kept for it; the file's path."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkstemp creates the file with mode 0600, whatever the umask.
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".session-")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(
                        {
                            "server": saved.server,
                            "token": saved.token,
                            "account": saved.account,
                            "expires_ms": saved.expires_ms,
                        },
                        file,
                    )
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self.path(server))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            raise SessionFileError(
                f"cannot keep the session in {self.folder}: {error.strerror or error}"
            ) from None
        return self.path(server)

    def load(self, server: Address) -> Saved | None:
        """The session kept for server, or None (none kept, or a file that is not one)."""
        try:
            data = json.loads(self.path(server).read_text(encoding="utf-8"))
            return Saved(
                str(data["server"]),
                str(data["token"]),
                str(data["account"]),
                int(data["expires_ms"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def first(self, servers: Sequence[Address]) -> Saved | None:
        """The session kept for the first of servers that has one (servers sharing a
        store take each other's sessions)."""
        for server in servers:
            if (saved := self.load(server)) is not None:
                return saved
        return None

    def forget(self, server: Address) -> bool:
        """Delete the session kept for server; whether there was one."""
        try:
            self.path(server).unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise SessionFileError(
                f"cannot delete {self.path(server)}: {error.strerror or error}"
            ) from None
        return True
