"""`python -m bench` is the `mixbench` command."""

import sys

from bench.cli import main

sys.exit(main())
