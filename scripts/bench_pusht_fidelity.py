#!/usr/bin/env python
"""Push-T replay fidelity against the reference demos

The same command as `robodiff bench fidelity` (the packages must be installed: `pip install -e .` or `pip install .`)."""

import sys

from robodiff.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("envs.pusht.bench_fidelity"))
