"""`python -m analyzer` is the same as the `apple-net` command."""

import sys

from analyzer.cli import main

sys.exit(main())
