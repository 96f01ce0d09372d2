#!/usr/bin/env python
"""LeRobot v3.0 round trip of the reference Push-T data

The same command as `robodiff bench lerobot` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("envs.pusht.bench_lerobot"))
