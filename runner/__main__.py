"""`python -m runner` is the same as the `bridge-runner` command."""

import sys

from runner.cli import main

sys.exit(main())
