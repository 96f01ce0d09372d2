#!/usr/bin/env python
"""Teleoperate a UR Push-T station and record: python scripts/demo_real_robot.py --sim|--host IP --output PATH

The same command as `robodiff record` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("real_robot.record"))
