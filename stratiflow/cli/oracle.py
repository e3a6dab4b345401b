"""``stratiflow label-oracle``: answer the job's label requests from a file of true labels.

A simulated annotator for demos and for evaluating active learning on the real broker:
it follows the label-requests topic (committed records only), and sends each request's
label, after ``--delay-ms`` and wrong with probability ``--noise``, to where the job reads
labels (the labels topic with ``labels.source: topic``, else the events topic).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from stratiflow.cli.errors import CliError
from stratiflow.config import Config
from stratiflow.curation import LabelOracle, read_true_labels
from stratiflow.io import kafka as kafka_io
from stratiflow.io.preflight import check_broker
from stratiflow.records import to_json_bytes

__all__ = ["add_oracle_command", "run_oracle"]


def run_oracle(
    cfg: Config, oracle: LabelOracle, *, max_requests: int | None, idle_exit: float | None
) -> int:
    """Answer requests until ``max_requests`` were read or none came for ``idle_exit`` s.

    Parameters
    ----------
    cfg
        The job's configuration: its broker, topics and label source.
    oracle
        Who answers.
    max_requests
        Stop after this many requests (``None``: no limit).
    idle_exit
        Stop after this many seconds without a request (``None``: follow forever).

    Returns
    -------
    int
        The exit status (0).
    """
    servers, props = cfg.kafka.bootstrap_servers, cfg.kafka.properties
    target = cfg.topics.labels if cfg.labels.source == "topic" else cfg.topics.events
    producer = kafka_io.producer(servers, props)
    due: list[tuple[int, int, dict[str, Any]]] = []
    sent = read = 0

    def flush(until_ms: float) -> None:
        nonlocal sent
        while due and due[0][0] <= until_ms:
            _, _, record = heapq.heappop(due)
            producer.send(target, key=str(record["key"]).encode(), value=to_json_bytes(record))
            sent += 1

    try:
        for message in kafka_io.read_topic(
            servers,
            cfg.topics.label_requests,
            props,
            from_beginning=True,
            max_records=max_requests,
            idle_timeout_s=idle_exit if idle_exit is not None else 3.0,
            follow=idle_exit is None,
        ):
            try:
                request = json.loads(message.value)
            except ValueError:
                continue  # not a request record: nothing to answer
            answered = oracle.answer(request, now_ms=int(time.time() * 1000))
            if answered is not None:
                heapq.heappush(due, (answered[0], read, answered[1]))
            read += 1
            flush(time.time() * 1000)
        while due:  # the answers still waiting for their delay
            time.sleep(max(0.0, (due[0][0] - time.time() * 1000) / 1000))
            flush(time.time() * 1000)
        producer.flush()
    except KeyboardInterrupt:
        pass
    finally:
        producer.close()
    print(
        f"label-oracle: {read} requests read, {sent} labels sent to {target} "
        f"({oracle.wrong} wrong on purpose, {oracle.unknown} ids without a known label)",
        file=sys.stderr,
    )
    return 0


def _cmd(args: argparse.Namespace, config_from: Callable[..., Config]) -> int:
    cfg = config_from(args, check_model=False)
    if not args.labels.is_file():
        what = "is a directory" if args.labels.is_dir() else "does not exist"
        raise CliError(f"{args.labels} {what} (--labels takes a JSONL file of true labels)")
    try:
        labels = read_true_labels(args.labels)
        oracle = LabelOracle(labels, args.delay_ms, args.noise, args.seed, args.annotator)
    except ValueError as exc:  # a line that is not JSON (UnicodeDecodeError too), --noise
        raise CliError(str(exc)) from None
    check_broker(cfg.kafka.bootstrap_servers, cfg.kafka.properties)
    return run_oracle(cfg, oracle, max_requests=args.max, idle_exit=args.idle_exit)


def add_oracle_command(
    subparsers: Any,
    add_config_args: Callable[[argparse.ArgumentParser], None],
    config_from: Callable[..., Config],
) -> None:
    """Register ``label-oracle`` under an argparse ``subparsers`` object.

    Parameters
    ----------
    subparsers
        What ``ArgumentParser.add_subparsers()`` returned.
    add_config_args
        Adds ``--config``, ``--set`` and ``--bootstrap-servers`` to a parser.
    config_from
        Loads the config those arguments name.
    """
    p = subparsers.add_parser(
        "label-oracle",
        help="answer the job's label requests from a file of true labels (a simulated annotator)",
        description=__doc__.split("\n\n", 1)[1].replace("\n", " "),
    )
    p.add_argument("--labels", required=True, type=Path, help="JSONL of events or label records")
    p.add_argument("--delay-ms", type=int, default=0, help="answer this long after a request")
    p.add_argument("--noise", type=float, default=0.0, help="probability of a wrong label")
    p.add_argument("--seed", type=int, default=0, help="seeds the noise")
    p.add_argument("--annotator", default="oracle", help="the annotator the labels name")
    p.add_argument("--max", type=int, help="stop after this many requests")
    p.add_argument("--idle-exit", type=float, help="stop after this many seconds without requests")
    add_config_args(p)
    p.set_defaults(func=partial(_cmd, config_from=config_from))
