#!/usr/bin/env python
"""Best / mean of last k / first evaluation reaching a score, of a training run: python scripts/run_summary.py RUN_DIR

The same command as `robodiff summary` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.summary"))
