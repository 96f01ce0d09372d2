#!/usr/bin/env python
"""Run a policy on a UR Push-T station: python scripts/eval_real_robot.py CHECKPOINT --sim|--host IP

The same command as `robodiff deploy` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("real_robot.deploy"))
