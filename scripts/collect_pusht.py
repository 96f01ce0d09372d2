#!/usr/bin/env python
"""Collect Push-T demonstrations: python scripts/collect_pusht.py --expert|--teleop --output PATH

The same command as `robodiff collect pusht` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("envs.pusht.collect"))
