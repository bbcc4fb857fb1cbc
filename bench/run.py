#!/usr/bin/env python3
"""Run the overhead benchmark: ``.venv/bin/python bench/run.py [--quick] [--json PATH]``.

The logic lives in ``backend/telemetry/bench.py`` (``sublarr-telemetry bench``);
this script makes it runnable from a checkout without installing the package.
The full run takes several minutes and prints the comparison table, then one
line of headline ratios.
"""
import sys
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent / "backend"
if str(BACKEND) not in sys.path:
    sys.path.insert(0, str(BACKEND))

from telemetry.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
