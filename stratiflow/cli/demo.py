"""``make demo``: a local broker, the Phishing dataset, the job on an embedded Flink.

Everything runs on loopback; the broker is stopped at the end unless ``--keep``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from stratiflow.cli.tables import format_record
from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.local import broker, provision
from stratiflow.local.errors import PortInUseError
from stratiflow.local.paths import REPO_ROOT, local_paths
from stratiflow.local.procs import free_port, job_environ, port_is_free
from stratiflow.records import to_json_bytes

DEMO_CONFIG = REPO_ROOT / "examples" / "job.yaml"
INSTANCE = "demo"
#: A handful of broken records, to show the dead-letter path.
BAD_RECORDS = [
    b"this is not json",
    b'{"id": "bad-nan", "ts": 1, "features": {"x": NaN}, "label": true}',
    b'{"id": "bad-label", "ts": 1, "features": {"x": 1.0}, "label": "phishing"}',
    b'{"ts": 1, "features": {"x": 1.0}, "label": true}',
    b"\xff\xfe not utf-8",
]


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


def _river_accuracy() -> float:
    from river import datasets, evaluate, linear_model, metrics, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.0)
    return float(
        evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy()).get()
    )


def _start_dashboard(bootstrap: str) -> tuple[str, Callable[[], None]]:
    """The live dashboard on the demo's topics, served from a thread; (its URL, stop)."""
    import threading

    import uvicorn

    from stratiflow.cli.dashboard import DEFAULT_PORT
    from stratiflow.config import load_cli_config
    from stratiflow.dashboard.server import Dashboard
    from stratiflow.dashboard.sources import TopicFollower

    cfg = load_cli_config(DEMO_CONFIG, [], bootstrap, check_model=False)
    dashboard = Dashboard(title=f"demo: Phishing on {bootstrap}")
    dashboard.follow_topics(TopicFollower.of_job(cfg, retry_s=0.5))
    port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            dashboard.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}/", stop


def _hold(url: str) -> None:
    """On a terminal, keep the dashboard up until the user is done looking."""
    if not sys.stdin.isatty():
        return
    _say(f"the dashboard stays up at {url}; press Enter to stop it and the broker")
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.readline()


def run_demo(port: int = 9092, keep: bool = False) -> int:
    started = time.monotonic()
    # A LocalInfraError (no Java, no Maven to provision with...) is one error line, exit 2.
    provision.ensure_provisioned()
    # The demo's own broker instance starts from empty topics every time.
    broker.stop(INSTANCE, purge=True)
    try:
        info = broker.start(port, instance=INSTANCE)
    except PortInUseError:
        info = broker.start(free_port(), instance=INSTANCE)
        _say(f"port {port} is taken; using {info.port}")
    bootstrap = f"127.0.0.1:{info.port}"
    url, stop_dashboard = _start_dashboard(bootstrap)
    _say(f"dashboard: {url}  (open it to watch the model learn)")
    _say(f"Apache Kafka {provision.KAFKA_VERSION} (KRaft) ready on {bootstrap}")
    try:
        code = _run(bootstrap, started)
        _hold(url)
        return code
    finally:
        stop_dashboard()
        if keep:
            _say(
                f"broker left running: stratiflow tail metrics --from-beginning "
                f"--bootstrap-servers {bootstrap}; `make stop` stops it"
            )
        else:
            broker.stop(INSTANCE, purge=True)
            _say("broker stopped")


def _run(bootstrap: str, started: float) -> int:
    kafka_io.ensure_topics(
        bootstrap, {t: 1 for t in ("events", "predictions", "metrics", "dead-letters")}
    )
    producer = kafka_io.producer(bootstrap)
    good = 0
    for i, event in enumerate(river_events("phishing", start_ts=int(time.time() * 1000))):
        producer.send("events", key=b"default", value=to_json_bytes(event))
        good += 1
        if i % 250 == 100 and i // 250 < len(BAD_RECORDS):
            producer.send("events", value=BAD_RECORDS[i // 250])
    producer.flush()
    producer.close()
    bad = len(BAD_RECORDS)
    _say(f"produced {good} Phishing events + {bad} malformed records to 'events'")

    log = local_paths().log_dir / "demo-job.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "jobs.train_predict",
        "--config",
        str(DEMO_CONFIG),
        "--bootstrap-servers",
        bootstrap,
        "--bounded",
        "--set",
        "metrics.report_every=250",
        # Exactly-once output becomes visible at each checkpoint: every second here.
        "--set",
        "job.checkpoint_interval_ms=1s",
    ]
    _say("running the train/predict job on an embedded Flink (MiniCluster); live metrics:")
    with log.open("wb") as handle:
        job = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=job_environ()
        )
    final: dict[str, Any] | None = None

    reader = kafka_io.consumer(bootstrap)

    reader.assign([TopicPartition("metrics", 0)])
    reader.seek_to_beginning()
    while final is None:
        for records in reader.poll(timeout_ms=500).values():
            for record in records:
                print("   " + format_record(record.value), flush=True)
                report = json.loads(record.value)
                if report.get("final"):
                    final = report
        if job.poll() is not None and final is None:
            time.sleep(2)
            if not reader.poll(timeout_ms=2000):
                break
    reader.close()
    code = job.wait()
    if code != 0 or final is None:
        print(Path(log).read_text(errors="replace")[-3000:], file=sys.stderr)
        print(
            f"error: the job failed (exit {code}); the end of its log {log} is above",
            file=sys.stderr,
        )
        return 2

    predictions = sum(1 for _ in kafka_io.read_topic(bootstrap, "predictions", idle_timeout_s=2))
    letters = [
        json.loads(r.value)
        for r in kafka_io.read_topic(bootstrap, "dead-letters", idle_timeout_s=2)
    ]
    reasons = Counter(letter["reason"] for letter in letters)
    river = _river_accuracy()
    acc = final["cumulative"]["accuracy"]
    print()
    _say("summary")
    print(f"   events in          {good + bad}  ({good} good, {bad} malformed)")
    print(f"   predictions        {predictions}")
    print(f"   dead letters       {len(letters)}  {dict(reasons)}")
    print(
        f"   reconciled         {'yes' if predictions + len(letters) == good + bad else 'NO'}"
        f"  (in = predictions + dead letters)"
    )
    print(
        f"   final accuracy     {acc:.4f}  (River progressive_val_score: {river:.4f}"
        f"{', identical' if acc == river else ', DIFFERENT'})"
    )
    print(f"   took               {time.monotonic() - started:.0f} s; job log: {log}")
    ok = predictions + len(letters) == good + bad and acc == river
    return 0 if ok else 1
