"""``stratiflow local ...``: provision, start, stop and inspect local infrastructure.

Registered into the main parser with :func:`add_local_commands`. Every command
function takes the parsed arguments and returns the process exit code:
0 success, 1 error (printed as ``error: ...`` without a traceback), and for
``status`` 3 when the thing is not running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from stratiflow.local import broker, flink, provision, s3server
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import local_paths

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3

Command = Callable[[argparse.Namespace], int]


def _guarded(func: Command) -> Command:
    """Turn ``LocalInfraError`` into ``error: ...`` on stderr and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except LocalInfraError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except ValueError as exc:  # e.g. an invalid --instance name
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def _instance_flag(instance: str) -> str:
    return "" if instance == "default" else f" --instance {instance}"


@_guarded
def cmd_setup(args: argparse.Namespace) -> int:
    """Download the broker binary and connector jars, build the Java helpers."""
    paths = local_paths()
    provision.ensure_provisioned(paths, force=args.force)
    print(f"local infrastructure ready in {paths.home}")
    print(f"  broker binary  {paths.tansu} (Tansu {provision.TANSU_VERSION})")
    for jar in paths.jars():
        print(f"  job jar        {jar}")
    return EXIT_OK


def _storage(info: broker.BrokerInfo) -> str:
    if not info.durable:
        return "in-memory storage"
    return f"durable storage {info.storage} on S3 server {info.s3_endpoint}"


def _kept_storage(instance: str, s3: s3server.S3Info) -> str:
    flag = _instance_flag(instance)
    return (
        f"its durable storage (S3 server on {s3.endpoint}, pid {s3.pid}) keeps the topics: "
        f"`stratiflow local broker start --durable{flag}` brings them back, "
        f"`stratiflow local broker stop --with-storage{flag}` drops them"
    )


@_guarded
def cmd_broker(args: argparse.Namespace) -> int:
    """``local broker start|stop|status``."""
    port = args.port if args.port is not None else broker.DEFAULT_PORT
    if args.durable and args.action != "start":
        raise LocalInfraError("--durable goes with `start` (stop and status need no flag)")
    if args.with_storage and args.action != "stop":
        raise LocalInfraError("--with-storage goes with `stop`")
    if args.action == "start":
        info = broker.start(
            port,
            instance=args.instance,
            durable=args.durable,
            log=lambda msg: print(msg, file=sys.stderr),
        )
        state = "already running" if info.already_running else "ready"
        print(
            f"broker {state} on {info.bootstrap} (pid {info.pid}, {_storage(info)}, "
            f"log {info.log_file})"
        )
        return EXIT_OK
    if args.action == "stop":
        s3 = s3server.status(args.instance)
        if broker.stop(args.instance, with_storage=args.with_storage):
            print(f"broker {args.instance!r} stopped")
        else:
            print(f"broker {args.instance!r} was not running")
        if s3 is not None and args.with_storage:
            print(f"its durable storage (S3 server pid {s3.pid}) stopped; its topics are gone")
        elif s3 is not None:
            print(_kept_storage(args.instance, s3))
        return EXIT_OK
    status = broker.status(args.instance)
    if status is None:
        s3 = s3server.status(args.instance)
        if s3 is not None:
            print(f"broker {args.instance!r} is not running; {_kept_storage(args.instance, s3)}")
            return EXIT_NOT_RUNNING
        print(
            f"broker {args.instance!r} is not running "
            f"(start it with `stratiflow local broker start{_instance_flag(args.instance)}`)"
        )
        return EXIT_NOT_RUNNING
    line = f"broker {args.instance!r} running on {status.bootstrap} (pid {status.pid}, "
    line += _storage(status)
    if status.durable and s3server.status(args.instance) is None:
        line += ", which is NOT running: the broker cannot read or write its topics"
        print(line + ")")
        return EXIT_ERROR
    print(line + ")")
    return EXIT_OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@_guarded
def cmd_flink(args: argparse.Namespace) -> int:
    """``local flink start|stop|status``."""
    port = args.port if args.port is not None else flink.DEFAULT_REST_PORT
    if args.action == "start":
        info = flink.start(port, slots=args.slots, instance=args.instance)
        state = "already running" if info.already_running else "ready"
        print(
            f"Flink cluster {state}: Web UI {info.web_ui} "
            f"({_plural(info.taskmanagers, 'TaskManager')}, {_plural(info.slots_total, 'slot')}; "
            f"logs {info.log_dir})"
        )
        return EXIT_OK
    if args.action == "stop":
        if flink.stop(args.instance):
            print(f"Flink cluster {args.instance!r} stopped")
        else:
            print(f"Flink cluster {args.instance!r} was not running")
        return EXIT_OK
    status = flink.status(args.instance)
    if status is None:
        pids = flink.running_pids(args.instance)
        if pids:
            print(
                f"Flink cluster {args.instance!r} has processes ({', '.join(map(str, pids))}) "
                "but its REST API does not answer (starting, or hung; "
                f"`stratiflow local flink stop{_instance_flag(args.instance)}` cleans up)"
            )
            return EXIT_NOT_RUNNING
        print(
            f"Flink cluster {args.instance!r} is not running "
            f"(start it with `stratiflow local flink start{_instance_flag(args.instance)}`)"
        )
        return EXIT_NOT_RUNNING
    print(
        f"Flink cluster {args.instance!r} running: Web UI {status.web_ui}, "
        f"{_plural(status.taskmanagers, 'TaskManager')}, "
        f"{status.slots_available}/{status.slots_total} slots free, "
        f"{_plural(status.jobs_running, 'running job')}"
    )
    return EXIT_OK


def add_local_commands(subparsers: Any) -> None:
    """Register ``local setup|broker|flink`` under an argparse ``subparsers`` object.

    ``subparsers`` is what ``ArgumentParser.add_subparsers()`` returned (typed
    ``Any`` because argparse's class for it is private).
    """
    local = subparsers.add_parser(
        "local",
        help="local broker (Tansu) and standalone Flink cluster for demos and tests",
        description="Provision, start, stop and inspect the local broker and Flink cluster.",
    )
    sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")

    p = sub.add_parser("setup", help="fetch the broker binary and connector jars, build helpers")
    p.add_argument("--force", action="store_true", help="re-extract and rebuild everything")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser(
        "broker",
        help="start, stop or inspect the local Kafka-compatible broker",
        description=(
            "A Tansu broker on 127.0.0.1. By default it keeps its topics in its own memory: "
            "stopping or losing the process drops them. With `start --durable` they live in a "
            "loopback S3 server of the instance's own (moto, installed on first use into "
            ".stratiflow/s3-venv), which keeps running when the broker stops or crashes, so "
            "`start --durable` again brings back every acknowledged record. The S3 server "
            "holds the data in memory: `stop --with-storage` (or a reboot) drops it."
        ),
    )
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument(
        "--port", type=int, help=f"listen on 127.0.0.1:PORT (default {broker.DEFAULT_PORT})"
    )
    p.add_argument("--instance", default="default", help="name of this broker (default: default)")
    p.add_argument(
        "--durable",
        action="store_true",
        help="start: keep the topics in the instance's loopback S3 server (started if needed) "
        "so that they survive a crash, kill or stop of the broker",
    )
    p.add_argument(
        "--with-storage",
        action="store_true",
        help="stop: also stop the S3 server of a durable broker, dropping its topics "
        "(without it the storage keeps running for the next `start --durable`)",
    )
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("flink", help="start, stop or inspect the local standalone Flink cluster")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument(
        "--port",
        type=int,
        help=f"REST API / Web UI port on 127.0.0.1 (default {flink.DEFAULT_REST_PORT})",
    )
    p.add_argument(
        "--slots",
        type=int,
        default=flink.DEFAULT_SLOTS,
        help=f"task slots of the TaskManager (default {flink.DEFAULT_SLOTS})",
    )
    p.add_argument("--instance", default="default", help="name of this cluster (default: default)")
    p.set_defaults(func=cmd_flink)
