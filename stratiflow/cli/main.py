"""The ``stratiflow`` command line: produce, submit, tail, backtest, demo, local.

The CLI never imports PyFlink itself: jobs run in their own Python process
(``python -m jobs.train_predict`` locally, ``flink run -py`` on a cluster), so
this module stays in the pure core.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from kafka.errors import KafkaError

from stratiflow.cli.dashboard import add_dashboard_commands
from stratiflow.cli.demo import run_demo
from stratiflow.cli.oracle import add_oracle_command
from stratiflow.cli.tables import format_tail
from stratiflow.config import Config, ConfigError, load_cli_config, redact
from stratiflow.io import kafka as kafka_io
from stratiflow.io import sources
from stratiflow.io.preflight import PreflightError, check_jars, check_kafka, check_tls
from stratiflow.io.sources import dataset_names, is_label_record, jsonl_lines, record_key
from stratiflow.local import flink
from stratiflow.local.cli import add_local_commands, plural
from stratiflow.local.flink import stop_job
from stratiflow.local.paths import REPO_ROOT, local_paths
from stratiflow.local.procs import job_environ
from stratiflow.records import Rejection, to_json_bytes
from stratiflow.snapshots import SnapshotError, key_from_env, write_snapshot

#: The job graphs ``flink run -py`` gets: ``jobs/`` of the repo, installed as ``stratiflow.jobs``.
JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


# -- shared helpers -------------------------------------------------------------------------


def _config_from(args: argparse.Namespace, *, check_model: bool = True) -> Config:
    return load_cli_config(args.config, args.set, args.bootstrap_servers, check_model=check_model)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="job YAML (defaults apply when omitted)")
    parser.add_argument("--bootstrap-servers", help="override kafka.bootstrap_servers")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override any config value, e.g. --set metrics.report_every=100",
    )


class Progress:
    """A one-line progress bar on stderr (no-op when stderr is not a terminal and quiet)."""

    def __init__(self, total: int | None, stream: TextIO = sys.stderr, quiet: bool = False):
        self.total, self.stream, self.quiet = total, stream, quiet
        self.count = 0
        self.start = time.monotonic()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last_draw >= 0.2:
            self._draw(now)

    def close(self) -> None:
        self._draw(time.monotonic())
        if not self.quiet:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        if self.quiet:
            return
        rate = self.count / max(now - self.start, 1e-9)
        if self.total:
            done = int(30 * self.count / self.total)
            bar = "#" * done + "." * (30 - done)
            text = f"\r[{bar}] {self.count}/{self.total} events  {rate:,.0f} ev/s"
        else:
            text = f"\r{self.count} events  {rate:,.0f} ev/s"
        self.stream.write(text)
        self.stream.flush()


def _tls_ok(cfg: Config) -> bool:
    """False, after saying why on stderr, when TLS to the broker fails with this config
    (e.g. a CA that did not sign the broker's certificate): fail in seconds, not after
    the client's retries."""

    try:
        check_tls(cfg.kafka.bootstrap_servers, cfg.kafka.properties)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


# -- produce --------------------------------------------------------------------------------


def _produce_records(args: argparse.Namespace) -> Iterable[bytes]:

    source = str(args.source)
    keys = [k for k in (args.keys or "default").split(",") if k]
    start_ts = args.start_ts if args.start_ts is not None else int(time.time() * 1000)
    path = Path(source)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or (
        path.exists() and path.suffix.lower() != ".csv"
    ):
        if not path.is_file():
            raise ValueError(f"{path} does not exist")
        return sources.jsonl_records(path)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise ValueError(f"{path} does not exist")
        events: Iterable[dict[str, Any]] = sources.csv_events(
            path,
            label_column=args.label_column,
            start_ts=start_ts,
            interval_ms=args.interval_ms,
        )
        return (to_json_bytes(e) for e in events)
    events = sources.river_events(
        source.lower(),
        n=args.n,
        seed=args.seed,
        start_ts=start_ts,
        interval_ms=args.interval_ms,
        keys=keys,
        unlabelled_fraction=args.unlabelled_fraction,
        minority_share=args.minority_share,
    )
    if args.label_delay is not None:
        events = sources.with_delayed_labels(list(events), args.label_delay)
    return (to_json_bytes(e) for e in events)


def cmd_produce(args: argparse.Namespace) -> int:

    cfg = _config_from(args, check_model=False)
    topic = args.topic or cfg.topics.events
    # Label records (no features) go to their own topic when the job reads them there.
    labels_topic = cfg.topics.labels if cfg.labels.source == "topic" else topic
    try:
        records = _produce_records(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Known only when the user said how many; files and whole datasets count up.
    total = args.limit if args.limit is not None else args.n
    if not _tls_ok(cfg):
        return 2
    producer = kafka_io.producer(cfg.kafka.bootstrap_servers, cfg.kafka.properties)
    progress = Progress(total, quiet=args.quiet)
    start = time.monotonic()
    sent = 0
    try:
        for raw in records:
            if args.limit is not None and sent >= args.limit:
                break
            if args.rate:
                delay = start + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            is_label = labels_topic != topic and is_label_record(raw)
            producer.send(labels_topic if is_label else topic, key=record_key(raw), value=raw)
            sent += 1
            progress.update()
        producer.flush()
    finally:
        producer.close()
        progress.close()
    print(f"produced {sent} events to {topic} on {cfg.kafka.bootstrap_servers}", file=sys.stderr)
    return 0


# -- tail -----------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:

    cfg = _config_from(args, check_model=False)
    topic = getattr(cfg.topics, args.topic.replace("-", "_"), args.topic)
    follow = args.max is None and args.idle_exit is None
    if not _tls_ok(cfg):
        return 2
    count = 0
    try:
        for record in kafka_io.read_topic(
            cfg.kafka.bootstrap_servers,
            topic,
            cfg.kafka.properties,
            from_beginning=args.from_beginning,
            max_records=args.max,
            idle_timeout_s=args.idle_exit if args.idle_exit is not None else 3.0,
            follow=follow,
            read_uncommitted=args.read_uncommitted,
        ):
            value = record.value or b""
            print(value.decode("utf-8", "replace") if args.json else format_tail(value))
            count += 1
    except KeyboardInterrupt:
        pass
    print(f"({count} records from {topic})", file=sys.stderr)
    return 0


def cmd_transactions(args: argparse.Namespace) -> int:
    """List (and with ``--abort``, abort) the open Kafka transactions of the job's sinks."""

    cfg = _config_from(args, check_model=False)
    if not _tls_ok(cfg):
        return 2
    prefix = f"{cfg.job.transactional_id_prefix}-"
    bootstrap = cfg.kafka.bootstrap_servers
    # A running job rotates its transactions at every checkpoint; one much older than
    # that belongs to an attempt that died (or hangs).
    older_than = (
        args.older_than
        if args.older_than is not None
        else 2 * cfg.job.checkpoint_interval_ms / 1000 + 30
    )
    try:
        found = kafka_io.open_transactions(bootstrap, prefix, cfg.kafka.properties)
    except KafkaError as exc:
        print(f"error: cannot list the transactions on {bootstrap}: {exc}", file=sys.stderr)
        return 2
    print(
        f"{plural(len(found), 'open transaction')} of job {cfg.job.name!r} "
        f"(transactional ids {prefix}*) on {bootstrap}"
    )
    now_ms = time.time() * 1000
    left = 0
    for txn in found:
        age = txn.age_s(now_ms)
        print(
            f"  {txn.transactional_id}  {txn.state}, open {age:.0f} s (the broker aborts it "
            f"after {txn.timeout_ms / 1000:.0f} s); partitions {', '.join(txn.partitions)}"
        )
        if not args.abort:
            left += 1
        elif age < older_than:
            left += 1
            print(f"    kept: younger than {older_than:.0f} s, it may belong to a running job")
        else:
            kafka_io.abort_transaction(bootstrap, txn.transactional_id, cfg.kafka.properties)
            print("    aborted (its records stay invisible to read_committed readers)")
    if found and not args.abort:
        print(
            "A job that died with a transaction open holds back every read_committed reader "
            "of those partitions until the transaction times out. Resume the job from its "
            "last checkpoint (`submit --from-savepoint`), which commits what that checkpoint "
            "covered, or, if it will not be resumed, abort them: "
            "`stratiflow transactions --abort` (same --config)."
        )
    return 1 if args.abort and left else 0


# -- submit / backtest ----------------------------------------------------------------------


def _job_args(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.config:
        out += ["--config", str(Path(args.config).resolve())]
    for item in args.set:
        out += ["--set", item]
    if args.bootstrap_servers:
        out += ["--bootstrap-servers", args.bootstrap_servers]
    if getattr(args, "bounded", False):
        out.append("--bounded")
    return out


def submit_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command (and environment) that runs the job, locally or on a cluster."""
    env = job_environ()
    job = str(JOBS_DIR / "train_predict.py")
    if not args.jobmanager:
        local = [sys.executable, "-m", "stratiflow.jobs.train_predict", *_job_args(args)]
        if args.from_savepoint:
            local += ["--from-savepoint", args.from_savepoint]
        return local, env

    host, _, port = args.jobmanager.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("--jobmanager", f"expected HOST:PORT, got {args.jobmanager!r}")
    env.update(flink.cluster_env(args.flink_instance) if args.flink_instance else {})
    env["PYFLINK_CLIENT_EXECUTABLE"] = sys.executable
    command = [
        str(flink.flink_cli()),
        "run",
        f"-Drest.address={host}",
        f"-Drest.port={port}",
        # stratiflow must be installed where the cluster's Python runs (the venv here,
        # the image in deploy/); shipping dirs with -pyfs would put their contents on
        # sys.path and shadow real packages.
        "-pyclientexec",
        sys.executable,
    ]
    if args.detached:
        command.append("-d")
    if args.from_savepoint:
        command += ["-s", args.from_savepoint]
    command += ["-py", job, *_job_args(args)]
    return command, env


def cmd_submit(args: argparse.Namespace) -> int:
    cfg = _config_from(args)  # fail here, with the field's name, not inside Flink
    print(
        f"job {cfg.job.name}: {cfg.topics.events} -> {cfg.topics.predictions}, "
        f"{cfg.topics.metrics}, {cfg.topics.dead_letters} on {cfg.kafka.bootstrap_servers} "
        f"(kafka properties: {redact(cfg.kafka.properties)})",
        file=sys.stderr,
    )
    if not args.no_preflight:
        try:
            check_jars(local_paths().lib_dir)
            for warning in check_kafka(cfg):
                print(f"warning: {warning}", file=sys.stderr)
        except PreflightError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    command, env = submit_command(args)
    if args.detached and not args.jobmanager:
        log = local_paths().log_dir / f"job-{int(time.time())}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO_ROOT,
            )
        print(f"job running in the background (pid {proc.pid}, log {log})")
        return 0
    return subprocess.call(command, env=env, cwd=REPO_ROOT)


def cmd_stop(args: argparse.Namespace) -> int:

    try:
        location = stop_job(args.jobmanager, job_id=args.job, savepoint_dir=args.savepoint)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if location:
        print(location)
        print(
            f"savepoint written; resume with: stratiflow submit --from-savepoint {location} ...",
            file=sys.stderr,
        )
    else:
        print("job cancelled", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train offline on a JSONL file (the job's own semantics) and write signed snapshots."""
    from stratiflow.runner.replay import replay
    from stratiflow.validation.parse import parse_event

    cfg = _config_from(args)
    try:
        key = key_from_env(cfg.snapshots.key_env)
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = Path(args.events)
    if not path.is_file():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    records, rejected = [], 0
    for _, raw in jsonl_lines(path):
        parsed = parse_event(raw, rules=cfg.validation)
        if isinstance(parsed, Rejection):
            rejected += 1
        else:
            records.append(parsed)
    result = replay(records, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for model_key, state in sorted(result.states.items()):
        target = out / f"{model_key}.snap"
        write_snapshot(target, state.model, key=key, model_key=model_key)
        final = next(r for r in result.reports if r["final"] and r["key"] == model_key)
        accuracy = final["cumulative"]["accuracy"]
        print(
            f"{target}: key {model_key}, learned {state.model_version} examples, "
            f"prequential accuracy {'-' if accuracy is None else f'{accuracy:.4f}'}"
        )
    print(f"{len(records)} records used, {rejected} rejected", file=sys.stderr)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    _config_from(args)
    if not Path(args.events).is_file():
        print(f"error: {args.events} does not exist", file=sys.stderr)
        return 2
    command = [
        sys.executable,
        "-m",
        "jobs.backtest",
        "--events",
        str(Path(args.events).resolve()),
        "--out",
        str(Path(args.out).resolve()),
        *_job_args(args),
    ]
    return subprocess.call(command, cwd=REPO_ROOT, env=job_environ())


def cmd_demo(args: argparse.Namespace) -> int:

    return run_demo(port=args.port, keep=args.keep)


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(prog="stratiflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("produce", help="send events from a file or River dataset to Kafka")
    p.add_argument("source", help=f"a .jsonl or .csv file, or one of: {', '.join(dataset_names())}")
    p.add_argument("--topic", help="topic (default: the config's events topic)")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    p.add_argument("--limit", type=int, help="stop after this many events")
    p.add_argument("--n", type=int, help="events to generate from a River generator")
    p.add_argument("--seed", type=int, default=42, help="seed for generators")
    p.add_argument("--keys", help="comma-separated model keys, assigned round-robin")
    p.add_argument("--start-ts", type=int, help="event time of the first event (ms; default now)")
    p.add_argument("--interval-ms", type=int, default=1000, help="event-time step between events")
    p.add_argument(
        "--unlabelled-fraction",
        type=float,
        default=0.0,
        help="share of generated events sent without a label",
    )
    p.add_argument(
        "--minority-share",
        type=float,
        help="make a binary generator imbalanced: share of the positive class, e.g. 0.05",
    )
    p.add_argument("--label-column", default="label", help="CSV column holding the label")
    p.add_argument(
        "--label-delay",
        type=int,
        metavar="MS",
        help="send each generated label later, as a label record MS of event time after "
        "its event (to the labels topic when labels.source is topic)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_args(p)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("submit", help="run the train/predict job (MiniCluster or a cluster)")
    _add_config_args(p)
    p.add_argument(
        "--jobmanager",
        metavar="HOST:PORT",
        help="submit to this Flink cluster's REST endpoint instead of a MiniCluster",
    )
    p.add_argument("--flink-instance", help="use the config dir of this `stratiflow local flink`")
    p.add_argument("--detached", action="store_true", help="return once the job is submitted")
    p.add_argument(
        "--bounded",
        action="store_true",
        help="read the events topic up to its current end, then finish",
    )
    p.add_argument(
        "--from-savepoint",
        metavar="PATH",
        help="start from this savepoint (or retained checkpoint): same model, same offsets",
    )
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the checks that the broker answers and the input topics exist",
    )
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("train", help="train offline on a JSONL file; write signed snapshots")
    p.add_argument("--events", required=True, help="a JSONL file of events (and label records)")
    p.add_argument("--out", required=True, help="directory for <model key>.snap files")
    _add_config_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("stop", help="stop a job on a cluster, with a savepoint or cancelled")
    p.add_argument("--jobmanager", required=True, metavar="HOST:PORT", help="the cluster's REST")
    p.add_argument("--job", help="job id (default: the one running job)")
    p.add_argument(
        "--savepoint",
        metavar="DIR",
        help="stop with a savepoint in DIR (a path or URI) and print its location; "
        "without it the job is cancelled",
    )
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "tail",
        help="print records from predictions, metrics, dead-letters, model-events or "
        "label-requests",
    )
    p.add_argument(
        "topic",
        help="predictions | metrics | dead-letters | model-events | label-requests | "
        "sampling-stats | events | any topic",
    )
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, help="stop after this many records")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without records")
    p.add_argument("--json", action="store_true", help="print raw JSON lines")
    p.add_argument(
        "--read-uncommitted",
        action="store_true",
        help="also show records of open or aborted transactions (debugging; by default only "
        "committed records, what the exactly-once sinks have made final, are shown)",
    )
    _add_config_args(p)
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser(
        "transactions",
        help="list, or abort, the open Kafka transactions a dead job's exactly-once sinks left",
        description=(
            "Lists the open transactions whose transactional id is the job's "
            "(job.transactional_id_prefix, by default its name). A job that died with one "
            "open and is not resumed blocks read_committed readers of those partitions until "
            "the transaction times out (job.transaction_timeout_ms). --abort fences each "
            "one older than --older-than: its records are dropped for good, so prefer "
            "resuming the job from its last checkpoint when you can."
        ),
    )
    p.add_argument("--abort", action="store_true", help="abort them (exit 1 if any is kept)")
    p.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="only abort transactions open longer than this (default: twice the checkpoint "
        "interval plus 30 s, so that a running job's current transaction is left alone)",
    )
    _add_config_args(p)
    p.set_defaults(func=cmd_transactions)

    p = sub.add_parser("backtest", help="run the job graph on a JSONL file, write JSONL outputs")
    p.add_argument("--events", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    _add_config_args(p)
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("demo", help="broker + Phishing + job on an embedded Flink, live metrics")
    p.add_argument("--port", type=int, default=9092, help="local broker port")
    p.add_argument("--keep", action="store_true", help="leave the broker running afterwards")
    p.set_defaults(func=cmd_demo)

    add_oracle_command(sub, _add_config_args, _config_from)
    add_dashboard_commands(sub, _add_config_args, _config_from)
    add_local_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``stratiflow`` command line.

    Parameters
    ----------
    argv
        The arguments after the program's name (``None``: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: the subcommand's (0 on success), or 2 after a
        configuration error, which is printed to stderr.

    Raises
    ------
    SystemExit
        On ``--help`` or arguments the parser refuses (as :mod:`argparse` does).
    """
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
