"""`python -m purechat` is the `purechat` command."""

import sys

from purechat.entry import main

sys.exit(main())
