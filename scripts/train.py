#!/usr/bin/env python
"""Train a policy: python scripts/train.py task=... policy=... [key=value ...]

The same command as `robodiff train` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.train"))
