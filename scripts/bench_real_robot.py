#!/usr/bin/env python
"""Real-robot runtime timing on the twin

The same command as `robodiff bench real-robot` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("real_robot.bench"))
