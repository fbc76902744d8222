"""`python -m cli`: the same as the `upstream` command."""

import sys

from cli.main import main

sys.exit(main())
