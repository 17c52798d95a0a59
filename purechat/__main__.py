"""`python -m purechat` is the `purechat` command."""

import sys

from purechat.cli import main

sys.exit(main())
