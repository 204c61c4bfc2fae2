"""``python -m symmetrize ...``: the ``symmetrize`` command line."""

import sys

from symmetrize.cli import main

if __name__ == "__main__":
    sys.exit(main())
