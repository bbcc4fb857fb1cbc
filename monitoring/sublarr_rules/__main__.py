"""``scripts/rules [--check] [--out FILE]``.

Writes the Prometheus rules file (default: monitoring/prometheus/rules/sublarr.rules.yml
beside this package). With ``--check`` nothing is written: exit 1 when the file
is missing or differs from the generator's output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REGENERATE = "scripts/rules"


def default_path() -> Path:
    """monitoring/prometheus/rules/sublarr.rules.yml beside this generator."""
    return Path(__file__).resolve().parents[1] / "prometheus" / "rules" / "sublarr.rules.yml"


def problem(path: Path, expected: str) -> str | None:
    """What is wrong with ``path`` against the generator's output, or None."""
    if not path.is_file():
        return f"{path}: missing"
    if path.read_text(encoding="utf-8") != expected:
        return f"{path}: differs from the generator's output"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the file is stale")
    parser.add_argument("--out", type=Path, default=None, help="rules file to write or check")
    args = parser.parse_args(argv)
    path = args.out or default_path()
    try:
        from . import render

        expected = render()
    except ImportError as exc:
        print(f"writing the rules needs PyYAML ({exc}); install with: pip install PyYAML", file=sys.stderr)
        return 2
    found = problem(path, expected)
    if args.check:
        if found:
            print(f"{found}\nregenerate with: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if found:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
