#!/usr/bin/env python3
"""Run the overhead benchmark: ``.venv/bin/python bench/run.py [--quick] [--json PATH]``.

The logic lives in ``bench/overhead.py``, outside the installed package; it
measures the ``telemetry`` package installed in the venv (``scripts/bootstrap``).
The full run takes several minutes and prints the comparison table, then one
line of headline ratios.
"""
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

from bench.overhead import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
