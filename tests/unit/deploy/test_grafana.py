"""Static checks of the Grafana dashboard and the compose stack's Prometheus and Grafana.

The dashboard's stratiflow metric names come from one place,
:func:`stratiflow.operators.metrics.prometheus_names`; the e2e tier
(tests/e2e/test_prometheus_metrics.py) checks every metric the dashboard reads against a
real scrape of a running job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from stratiflow.operators.metrics import GROUP, PROMETHEUS_SCOPE, prometheus_name, prometheus_names
from tests.helpers import GRAFANA_DASHBOARD, dashboard_metrics, dashboard_queries

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
#: The labels a query may group or filter by: Flink's scope variables and ours.
LABELS = {"job_name", "operator_name", "task_name", "tm_id", "subtask_index", "model_key"}
LABELS |= {"reason", "type"}


def board() -> dict[str, Any]:
    loaded = json.loads(GRAFANA_DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def flink_properties() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    text = compose["x-flink-properties"]
    return dict(line.split(": ", 1) for line in text.strip().splitlines())


def test_the_dashboard_reads_every_stratiflow_metric_by_its_prometheus_name() -> None:
    ours = {m for m in dashboard_metrics() if m.startswith(f"{PROMETHEUS_SCOPE}_{GROUP}_")}
    assert ours == {prometheus_name(name) for name in prometheus_names()}


def test_the_other_metrics_are_flinks_own() -> None:
    theirs = {m for m in dashboard_metrics() if f"_{GROUP}_" not in m}
    assert theirs, "records in/out, back-pressure, checkpoints, restarts"
    for name in theirs:
        assert re.match(r"flink_(jobmanager_job|taskmanager_job_task|taskmanager_Status)_", name)
    for needed in ("numRecordsIn", "numRecordsOut", "backPressuredTimeMsPerSecond"):
        assert any(name.endswith(needed) for name in theirs), needed
    for needed in ("numberOfCompletedCheckpoints", "numRestarts"):
        assert any(name.endswith(needed) for name in theirs), needed


def test_queries_use_known_labels_and_balanced_brackets() -> None:
    for query in dashboard_queries():
        for opening, closing in ("()", "{}", "[]"):
            assert query.count(opening) == query.count(closing), query
        for group in re.findall(r"\bby \(([^)]*)\)", query):
            assert {g.strip() for g in group.split(",")} <= LABELS, query
        for label in re.findall(r"[{,]\s*(\w+)\s*=~?", query):
            assert label in LABELS, query
        variables = set(re.findall(r"\$(\w+)", query)) - {"__rate_interval", "__range"}
        assert variables <= {"job_name", "model_key"}, query


def test_every_panel_queries_the_datasource_variable() -> None:
    dashboard = board()
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    reference = {"type": "prometheus", "uid": f"${{{source['name']}}}"}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == reference, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == reference and target["refId"], panel["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == reference


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    dashboard = board()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    assert dashboard["uid"] == "stratiflow" and isinstance(dashboard["schemaVersion"], int)


def test_accuracy_panel_turns_ppm_into_a_ratio() -> None:
    accuracy = prometheus_name("rolling_accuracy_ppm")
    (panel,) = [
        p for p in board()["panels"] if any(accuracy in t["expr"] for t in p.get("targets", []))
    ]
    assert all(t["expr"].endswith("/ 1e6") for t in panel["targets"])
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_flink_containers_serve_the_port_prometheus_scrapes() -> None:
    properties = flink_properties()
    assert properties["metrics.reporter.prom.factory.class"] == (
        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
    )
    port = properties["metrics.reporter.prom.port"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = set()
    for job in scrape["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= set(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets |= {f"{name}:{dns['port']}" for name in dns["names"]}
    assert targets == {f"jobmanager:{port}", f"taskmanager:{port}"}
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "flinkdeployment.yaml").read_text())
    spec = deployment["spec"]
    assert spec["flinkConfiguration"]["metrics.reporter.prom.port"] == port
    (container,) = spec["podTemplate"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in container["ports"]


def test_grafana_provisions_the_datasource_and_the_dashboard_compose_mounts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert mounts["./deploy/grafana/stratiflow-dashboard.json"].startswith(
        "/var/lib/grafana/dashboards/"
    )
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "stratiflow.yaml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    prometheus = compose["services"]["prometheus"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (prometheus["volumes"])
    )
