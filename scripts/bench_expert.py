#!/usr/bin/env python
"""Benchmark the scripted Push-T expert

The same command as `robodiff bench expert` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("envs.pusht.bench_expert"))
