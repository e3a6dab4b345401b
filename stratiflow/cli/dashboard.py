"""``stratiflow dashboard`` (a live page) and ``stratiflow report`` (a static HTML file)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratiflow.config import Config
from stratiflow.local.procs import port_is_free

#: The dashboard's default port (loopback only unless ``--host`` says otherwise).
DEFAULT_PORT = 8050


def cmd_dashboard(args: argparse.Namespace, config_from: Callable[..., Config]) -> int:
    from stratiflow.dashboard.server import Dashboard, serve
    from stratiflow.dashboard.sources import TopicFollower

    if not port_is_free(args.port, args.host):
        print(
            f"error: port {args.port} is taken: stop what uses it or pass --port",
            file=sys.stderr,
        )
        return 2
    if args.run is not None:
        if not args.run.is_dir():
            print(f"error: no run directory at {args.run}", file=sys.stderr)
            return 2
        dashboard = Dashboard(title=f"run {args.run.resolve().name}")
        dashboard.follow_run(args.run)
    else:
        cfg = config_from(args, check_model=False)
        dashboard = Dashboard(title=f"{cfg.job.name} on {cfg.kafka.bootstrap_servers}")
        dashboard.follow_topics(TopicFollower.of_job(cfg))
    if args.jobmanager:
        dashboard.follow_health(args.jobmanager)
    print(f"dashboard: http://{args.host}:{args.port}/  (Ctrl-C stops it)", flush=True)
    serve(dashboard, args.host, args.port)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from stratiflow.dashboard.report import ReportError, write_report

    try:
        report = write_report(args.run, args.out, title=args.title, png=args.png)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pngs = f", {len(report.pngs)} PNGs beside it" if report.pngs else ""
    print(f"report: {report.html} ({report.records} records, {len(report.keys)} model keys{pngs})")
    return 0


def add_dashboard_commands(
    sub: Any,
    add_config_args: Callable[[argparse.ArgumentParser], None],
    config_from: Callable[..., Config],
) -> None:
    """Add ``dashboard`` and ``report`` to the CLI's subcommands."""
    p = sub.add_parser(
        "dashboard",
        help="a live web page of the job's metrics, class mix, drifts and dead letters",
    )
    add_config_args(p)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    p.add_argument("--jobmanager", metavar="HOST:PORT", help="show the job's health from Flink")
    p.add_argument(
        "--run",
        type=Path,
        metavar="DIR",
        help="show a backtest's output directory instead of the topics",
    )
    p.set_defaults(func=lambda args: cmd_dashboard(args, config_from))

    p = sub.add_parser("report", help="a backtest's charts as one self-contained HTML file")
    p.add_argument("run", type=Path, metavar="DIR", help="the --out directory of a backtest")
    p.add_argument("--out", type=Path, default=Path("report.html"))
    p.add_argument("--title", help="the report's title (default: the directory's name)")
    p.add_argument("--png", action="store_true", help="also one PNG per chart (Chromium)")
    p.set_defaults(func=cmd_report)
