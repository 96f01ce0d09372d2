#!/usr/bin/env python
"""Benchmark the diffusion policy

The same command as `robodiff bench policy` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.bench"))
