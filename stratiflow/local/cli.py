"""``stratiflow local ...``: provision, start, stop and inspect local infrastructure.

Registered into the main parser with :func:`add_local_commands`. Every command
function takes the parsed arguments and returns the process exit code:
0 success, 2 error (printed as one ``error: ...`` line, without a traceback), and for
``status`` 3 when the thing is not running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from stratiflow.local import broker, flink, provision
from stratiflow.local.errors import LocalInfraError, error_lines
from stratiflow.local.paths import local_paths
from stratiflow.local.procs import LOOPBACK

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_NOT_RUNNING = 3

Command = Callable[[argparse.Namespace], int]


def _guarded(func: Command) -> Command:
    """Turn ``LocalInfraError`` into ``error: ...`` on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (LocalInfraError, ValueError) as exc:  # ValueError: an invalid --instance name
            print("\n".join(error_lines(str(exc))), file=sys.stderr)
            return EXIT_ERROR

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def _instance_flag(instance: str) -> str:
    return "" if instance == "default" else f" --instance {instance}"


@_guarded
def cmd_setup(args: argparse.Namespace) -> int:
    """Resolve the pinned Java artifacts with Maven, build the Java helpers."""
    paths = local_paths()
    provision.ensure_provisioned(paths, force=args.force)
    print(f"local infrastructure ready in {paths.home}")
    print(f"  Kafka broker   {paths.kafka_libs} (Apache Kafka {provision.KAFKA_VERSION})")
    for jar in paths.jars():
        print(f"  job jar        {jar}")
    return EXIT_OK


def _print_client_settings(info: broker.BrokerInfo) -> None:
    for listener, props in broker.client_settings(info).items():
        if listener == "PLAINTEXT":
            continue
        print(f"  {listener} client settings (kafka.properties; secrets stay in their files):")
        for key, value in props.items():
            print(f"    {key}: {value}")


@_guarded
def cmd_broker(args: argparse.Namespace) -> int:
    """``local broker start|stop|status``."""
    port = args.port if args.port is not None else broker.DEFAULT_PORT
    if args.secure and args.action != "start":
        raise LocalInfraError("--secure goes with `start` (stop and status need no flag)")
    if args.purge and args.action != "stop":
        raise LocalInfraError("--purge goes with `stop`")
    if args.host is not None and args.action != "start":
        raise LocalInfraError("--host goes with `start`")
    if args.action == "start":
        info = broker.start(
            port,
            instance=args.instance,
            secure=args.secure,
            host=args.host or LOOPBACK,
            log=lambda msg: print(msg, file=sys.stderr),
        )
        state = "already running" if info.already_running else "ready"
        print(
            f"Apache Kafka {provision.KAFKA_VERSION} {state} on {info.bootstrap} "
            f"(pid {info.pid}, data {info.data_dir}, log {info.log_file})"
        )
        if info.secure:
            print(f"  SASL_SSL (SCRAM-SHA-512) on {info.sasl_ssl_bootstrap}, "
                  f"SSL with client certificates on {info.ssl_bootstrap}")  # fmt: skip
            _print_client_settings(info)
        return EXIT_OK
    if args.action == "stop":
        if broker.stop(args.instance, purge=args.purge):
            print(f"broker {args.instance!r} stopped")
        else:
            print(f"broker {args.instance!r} was not running")
        if args.purge:
            print("its data, config and TLS material are deleted")
        else:
            print(
                f"its topics stay in {local_paths().broker_data(args.instance)} for the next "
                f"start (`stop --purge{_instance_flag(args.instance)}` deletes them)"
            )
        return EXIT_OK
    status = broker.status(args.instance)
    if status is None:
        print(
            f"broker {args.instance!r} is not running "
            f"(start it with `stratiflow local broker start{_instance_flag(args.instance)}`)"
        )
        return EXIT_NOT_RUNNING
    print(
        f"broker {args.instance!r} running on {status.bootstrap} (pid {status.pid}, "
        f"data {status.data_dir})"
    )
    if status.secure:
        print(f"  SASL_SSL on {status.sasl_ssl_bootstrap}, SSL (mTLS) on {status.ssl_bootstrap}")
        _print_client_settings(status)
    return EXIT_OK


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, with an s unless ``n`` is 1."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@_guarded
def cmd_flink(args: argparse.Namespace) -> int:
    """``local flink start|stop|status``."""
    port = args.port if args.port is not None else flink.DEFAULT_REST_PORT
    if args.action == "start":
        info = flink.start(
            port,
            slots=args.slots,
            taskmanagers=args.taskmanagers,
            instance=args.instance,
            prometheus_port=args.prometheus_port,
        )
        state = "already running" if info.already_running else "ready"
        if info.taskmanagers_started:
            state += f", {plural(info.taskmanagers_started, 'TaskManager')} started to replace"
            state += " the missing ones"
        print(
            f"Flink cluster {state}: Web UI {info.web_ui} "
            f"({plural(info.taskmanagers, 'TaskManager')}, {plural(info.slots_total, 'slot')}; "
            f"logs {info.log_dir})"
        )
        if info.prometheus_port:
            print(
                f"Prometheus metrics: http://{info.host}:PORT/metrics, one PORT of "
                f"{info.prometheus_port} per JobManager and TaskManager"
            )
        elif args.prometheus_port and info.already_running:
            print("note: the running cluster has no Prometheus reporter; stop and start it again")
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
        f"{plural(status.taskmanagers, 'TaskManager')}, "
        f"{status.slots_available}/{status.slots_total} slots free, "
        f"{plural(status.jobs_running, 'running job')}"
    )
    return EXIT_OK


def add_local_commands(subparsers: Any) -> None:
    """Register ``local setup|broker|flink`` under an argparse ``subparsers`` object.

    ``subparsers`` is what ``ArgumentParser.add_subparsers()`` returned (typed
    ``Any`` because argparse's class for it is private).
    """
    local = subparsers.add_parser(
        "local",
        help="local Apache Kafka broker and standalone Flink cluster for demos and tests",
        description="Provision, start, stop and inspect the local broker and Flink cluster.",
    )
    sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "setup", help="resolve the pinned Kafka broker and connector jars with Maven, build helpers"
    )
    p.add_argument("--force", action="store_true", help="run Maven and rebuild everything again")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser(
        "broker",
        help="start, stop or inspect the local Apache Kafka broker",
        description=(
            "Apache Kafka in KRaft combined mode (one node, broker and controller) on "
            "127.0.0.1. Its storage is formatted on first start under .stratiflow/kafka/ and "
            "kept across restarts and crashes; `stop --purge` deletes it. `start --secure` "
            "also opens a SASL_SSL listener (SCRAM-SHA-512) and an SSL listener that requires "
            "client certificates, with a throw-away CA under .stratiflow/tls/."
        ),
    )
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument(
        "--port",
        type=int,
        help=f"PLAINTEXT listener on HOST:PORT (default {broker.DEFAULT_PORT})",
    )
    p.add_argument(
        "--host",
        help="start: the address every listener binds to and advertises (default 127.0.0.1; "
        "another address of this machine makes the broker reachable from other hosts)",
    )
    p.add_argument("--instance", default="default", help="name of this broker (default: default)")
    p.add_argument(
        "--secure",
        action="store_true",
        help="start: also open SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners; the user "
        "and certificates are made when the storage is first formatted",
    )
    p.add_argument(
        "--purge",
        action="store_true",
        help="stop: also delete the instance's data dir (every topic), config and TLS material",
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
    p.add_argument(
        "--taskmanagers",
        type=int,
        help="TaskManagers to run (default 1). On a running cluster, `start` starts the ones "
        "it lacks: after a TaskManager died, `local flink start` brings it back",
    )
    p.add_argument("--instance", default="default", help="name of this cluster (default: default)")
    p.add_argument(
        "--prometheus-port",
        metavar="PORT|FIRST-LAST",
        help="serve Flink's metrics, stratiflow's included, to Prometheus: each JobManager "
        "and TaskManager takes the first free port of this range (e.g. 9250-9260; Flink's "
        "reporter listens on every interface); default: no reporter",
    )
    p.set_defaults(func=cmd_flink)
