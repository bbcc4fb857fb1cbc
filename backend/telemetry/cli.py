"""The ``sublarr-telemetry`` command: ``demo``, ``catalog``, ``check`` and ``bench``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import reference


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from .bench import main as bench_main
        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="sublarr-telemetry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the instrumented reference app with generated traffic")
    demo.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default 8000)")
    demo.add_argument("--rate", type=float, default=20.0, help="generated requests per second (default 20; 0 = none)")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    demo.add_argument("--seed", type=int, default=None, help="seed for a repeatable traffic mix")

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

    commands.add_parser("bench", help="measure the overhead against prometheus_client and a bare app "
                                      "(sublarr-telemetry bench --help)")

    args = parser.parse_args(argv)
    if args.command == "check":
        from .doctor import run_check
        return run_check(args.prometheus, args.job, args.instance, args.rate_interval,
                         panels=not args.families_only)

    if args.command == "demo":
        from .demo import run_demo
        return run_demo(host=args.host, port=args.port, rate=args.rate,
                        duration=args.duration, seed=args.seed)
    if args.command == "catalog":
        if args.write_readme:
            changed = reference.write_readme(Path(args.write_readme))
            print(f"{args.write_readme}: {'updated' if changed else 'already current'}")
            return 0
        render = {"table": reference.table, "markdown": reference.markdown, "json": reference.as_json}
        sys.stdout.write(render[args.format]())
        if args.format == "json":
            sys.stdout.write("\n")
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
