#!/usr/bin/env python
"""Push-T simulation speed

The same command as `robodiff bench env` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("envs.pusht.bench_env"))
