"""The `purechat` command's entry: the program, or one sentence when it cannot load.

`purechat.cli` imports everything, and an installed h2, hpack or purerpc outside the
versions purechat was checked against is refused at import (transport/h2private.py):
a person should read that sentence and its pip command, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from purechat.errors import PurechatError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `purechat` command; exit status 1 with a sentence if it cannot load."""
    try:
        from purechat.cli import main as run  # noqa: PLC0415 (the import is what may fail)
    except PurechatError as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    return run(argv)
