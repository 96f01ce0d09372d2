#!/usr/bin/env python
"""Evaluate a checkpoint closed-loop: python scripts/eval.py CHECKPOINT --output DIR

The same command as `robodiff eval` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.evaluate"))
