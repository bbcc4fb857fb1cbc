"""The ``sublarr-telemetry`` command: ``catalog``, ``check`` and ``settings``.

The demo (``scripts/demo``) and the benchmark (``bench/run.py``) live in the
checkout, outside the installed package."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import catalog_docs, settings_docs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="sublarr-telemetry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    cat = commands.add_parser("catalog", help="print the metric reference generated from the catalog")
    cat.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    cat.add_argument("--write-readme", metavar="PATH", nargs="?", const="README.md", default=None,
                     help="rewrite the generated reference section of a README (default README.md)")

    check = commands.add_parser("check", help="ask a live Prometheus whether every family and panel has data")
    check.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL, e.g. http://localhost:9090")
    check.add_argument("--job", default=".*", help="regex for the job label, as the dashboards' job variable")
    check.add_argument("--instance", default=".*", help="regex for the instance label")
    check.add_argument("--rate-interval", default="1m",
                       help="value for $__rate_interval (at least 4x the scrape interval)")
    check.add_argument("--families-only", action="store_true", help="skip the dashboard panels")
    check.add_argument("--dashboards", type=Path, default=None, metavar="DIR",
                       help="directory of dashboard JSON whose panels are checked "
                            "(default: monitoring/grafana/dashboards of this checkout)")

    env = commands.add_parser("settings", help="print the settings reference generated from the table of variables")
    env.add_argument("--format", choices=("markdown", "json"), default="markdown")
    env.add_argument("--write-docs", metavar="PATH", nargs="?", const=settings_docs.DOCS_PAGE, default=None,
                     help=f"rewrite the generated settings section of a page (default {settings_docs.DOCS_PAGE})")

    args = parser.parse_args(argv)
    if args.command == "check":
        from .check import run_check
        return run_check(args.prometheus, args.job, args.instance, args.rate_interval,
                         panels=not args.families_only, dashboards_dir=args.dashboards)

    if args.command == "catalog":
        if args.write_readme:
            changed = catalog_docs.write_readme(Path(args.write_readme))
            print(f"{args.write_readme}: {'updated' if changed else 'already current'}")
            return 0
        render = {"table": catalog_docs.table, "markdown": catalog_docs.markdown, "json": catalog_docs.as_json}
        sys.stdout.write(render[args.format]())
        if args.format == "json":
            sys.stdout.write("\n")
        return 0
    if args.command == "settings":
        if args.write_docs:
            changed = settings_docs.write_docs(Path(args.write_docs))
            print(f"{args.write_docs}: {'updated' if changed else 'already current'}")
            return 0
        sys.stdout.write(settings_docs.as_json() + "\n" if args.format == "json" else settings_docs.markdown())
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
