"""``python -m ntg.cli``: the same entry point as the ``ntg`` console script."""

import sys

from ntg.cli import main

sys.exit(main())
