#!/usr/bin/env python
"""Distill a trained diffusion policy into a 1-3 step consistency policy: python scripts/distill.py TEACHER.ckpt [key=value ...]

The same command as `robodiff distill` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.distill"))
