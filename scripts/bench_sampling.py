#!/usr/bin/env python
"""Sampler x steps x latency per chunk x closed-loop score for one policy: python scripts/bench_sampling.py CKPT --output DIR

The same command as `robodiff bench sampling` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("policies.bench_sampling"))
