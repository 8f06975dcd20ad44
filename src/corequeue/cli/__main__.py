"""`python -m corequeue.cli`: the same as the `corequeue` command."""

import sys

from corequeue.cli import main

sys.exit(main())
