#!/usr/bin/env python
"""Shrink a training checkpoint into a publishable policy file (EMA weights, fp16): python scripts/publish_policy.py CKPT OUT

The same command as `robodiff publish` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.publish"))
