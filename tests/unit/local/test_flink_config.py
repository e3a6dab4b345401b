"""Editing Flink's config.yaml: nested layout kept, no key defined twice (no Java)."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratiflow.local import flink
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths
from stratiflow.local.provision import jar_version


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that fails on a mapping key given twice, like Flink 2."""


def _construct_unique(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(k) for k, _ in node.value]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise ValueError(f"duplicate keys {dupes}")
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique,
)


def _shipped_config() -> dict[str, Any]:
    loaded = yaml.safe_load((flink.flink_home() / "conf" / "config.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_shipped_config_is_nested() -> None:
    """The assumption behind set_option: PyFlink's file nests its keys."""
    shipped = _shipped_config()
    assert "rest" in shipped and isinstance(shipped["rest"], dict)
    assert "rest.address" not in shipped


def test_conf_dir_has_nested_values_and_no_duplicates(tmp_path: Path) -> None:
    paths = LocalPaths(tmp_path)
    conf = flink.write_conf_dir("unit", paths, rest_port=18081, rpc_port=16123, slots=3)
    text = (conf / "config.yaml").read_text()
    cfg = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass

    instance_dir = paths.flink_instance_dir("unit")
    assert cfg["rest"]["port"] == 18081
    assert cfg["rest"]["address"] == "127.0.0.1"
    assert cfg["rest"]["bind-address"] == "127.0.0.1"
    assert cfg["jobmanager"]["rpc"] == {"address": "127.0.0.1", "port": 16123}
    assert cfg["jobmanager"]["bind-host"] == "127.0.0.1"
    assert cfg["taskmanager"]["numberOfTaskSlots"] == 3
    assert cfg["taskmanager"]["host"] == "127.0.0.1"
    assert cfg["taskmanager"]["bind-host"] == "127.0.0.1"
    assert cfg["jobmanager"]["memory"]["process"]["size"] == "1024m"
    assert cfg["taskmanager"]["memory"]["process"]["size"] == "2048m"
    # Workers start through the venv's stratiflow-python-worker (Beam tuned); the client
    # is the venv's Python itself.
    worker = str(Path(sys.executable).parent / "stratiflow-python-worker")
    assert cfg["python"]["executable"] == worker
    assert cfg["python"]["client"]["executable"] == sys.executable
    assert cfg["env"]["pid"]["dir"] == str(instance_dir / "run")
    assert cfg["env"]["log"]["dir"] == str(instance_dir / "log")
    # What the shipped file had and we did not touch is still there.
    assert "--add-opens" in cfg["env"]["java"]["opts"]["all"]
    assert cfg["jobmanager"]["execution"]["failover-strategy"] == "region"

    flat = flink.flatten(cfg)
    assert flat["rest.port"] == 18081
    assert not any("." in key for key in cfg), "no flattened key next to nested ones"
    assert (conf / "masters").read_text().strip() == "127.0.0.1:18081"
    assert (conf / "log4j.properties").is_file()


def test_rewriting_replaces_the_previous_conf(tmp_path: Path) -> None:
    paths = LocalPaths(tmp_path)
    flink.write_conf_dir("unit", paths, rest_port=18081, rpc_port=16123, slots=2)
    conf = flink.write_conf_dir("unit", paths, rest_port=18082, rpc_port=16124, slots=2)
    cfg = yaml.safe_load((conf / "config.yaml").read_text())
    assert cfg["rest"]["port"] == 18082 and cfg["jobmanager"]["rpc"]["port"] == 16124


def test_set_option_respects_flattened_and_partly_flattened_keys() -> None:
    cfg: dict[str, Any] = {
        "rest.port": 1,
        "taskmanager": {"memory.process.size": "1g"},
        "python": {"executable": "python3"},
    }
    flink.set_option(cfg, "rest.port", 2)
    flink.set_option(cfg, "taskmanager.memory.process.size", "2g")
    flink.set_option(cfg, "taskmanager.numberOfTaskSlots", 4)
    flink.set_option(cfg, "python.client.executable", "/venv/python")
    assert cfg == {
        "rest.port": 2,
        "taskmanager": {"memory.process.size": "2g", "numberOfTaskSlots": 4},
        "python": {"executable": "python3", "client": {"executable": "/venv/python"}},
    }
    flink.flatten(cfg)


def test_set_option_refuses_to_nest_under_a_value() -> None:
    with pytest.raises(ValueError, match="already holds a value"):
        flink.set_option({"rest": "x"}, "rest.port", 1)


def test_flatten_detects_a_key_defined_twice() -> None:
    with pytest.raises(ValueError, match=r"'rest\.port' is defined more than once"):
        flink.flatten({"rest": {"port": 1}, "rest.port": 2})


def test_cluster_env_points_at_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLINK_HOME", "/opt/some-other-flink")
    env = flink.cluster_env("unit", LocalPaths(tmp_path))
    root = tmp_path / "flink" / "unit"
    assert env["FLINK_CONF_DIR"] == str(root / "conf")
    assert env["FLINK_LOG_DIR"] == str(root / "log")
    assert env["FLINK_PID_DIR"] == str(root / "run")
    assert "FLINK_HOME" not in env
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_flink_cli_is_inside_pyflink() -> None:
    assert flink.flink_cli().name == "flink"
    assert flink.flink_cli().parent.parent.name == "pyflink"
    assert (flink.flink_home() / "bin" / "start-cluster.sh").is_file()


def test_status_and_stop_of_an_unknown_instance(tmp_path: Path) -> None:
    paths = LocalPaths(tmp_path)
    assert flink.status("nothing", paths) is None
    assert flink.stop("nothing", paths) is False


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(flink.shutil, "which", lambda name: None)
    with pytest.raises(
        LocalInfraError, match=r"^`java` not found .*: the Flink cluster needs a Java 17 JDK"
    ):
        flink.start(18081, instance="unit", paths=LocalPaths(tmp_path))
    assert not (tmp_path / "flink" / "unit" / "conf").exists()


def test_slots_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(LocalInfraError, match="at least 1"):
        flink.start(18081, slots=0, instance="unit", paths=LocalPaths(tmp_path))


def test_a_taskmanager_elsewhere_binds_its_own_address_and_finds_the_jobmanager(
    tmp_path: Path,
) -> None:
    options = flink.cluster_options(
        rest_port=8081, rpc_port=6123, slots=1, instance_dir=tmp_path,
        host="10.0.0.3", jobmanager_host="10.0.0.2",
    )  # fmt: skip
    assert options["taskmanager.host"] == options["taskmanager.bind-host"] == "10.0.0.3"
    for key in ("jobmanager.rpc.address", "jobmanager.bind-host", "rest.address"):
        assert options[key] == "10.0.0.2", key
    local = flink.cluster_options(rest_port=8081, rpc_port=6123, slots=1, instance_dir=tmp_path)
    assert {local[k] for k in ("taskmanager.host", "rest.address")} == {"127.0.0.1"}


def test_the_prometheus_reporter_is_off_by_default_and_on_with_a_port_range(
    tmp_path: Path,
) -> None:
    paths = LocalPaths(tmp_path)
    conf = flink.write_conf_dir("unit", paths, rest_port=18081, rpc_port=16123, slots=1)
    off = flink.flatten(yaml.load((conf / "config.yaml").read_text(), Loader=_UniqueKeyLoader))
    assert not any(key.startswith("metrics.reporter.") for key in off)
    conf = flink.write_conf_dir(
        "unit", paths, rest_port=18081, rpc_port=16123, slots=1, prometheus_port="9250-9260"
    )
    on = flink.flatten(yaml.load((conf / "config.yaml").read_text(), Loader=_UniqueKeyLoader))
    assert on["metrics.reporter.prom.factory.class"] == flink.PROMETHEUS_REPORTER_FACTORY
    assert on["metrics.reporter.prom.port"] == "9250-9260"


def test_the_reporter_is_the_plugin_flinks_distribution_ships() -> None:
    """The daemons find it through FLINK_PLUGINS_DIR (the distribution's plugins/); its
    version is the bundled Flink's."""
    jar = flink.prometheus_plugin_jar()
    version = importlib.metadata.version("apache-flink")
    assert jar.parent == flink.flink_home() / "plugins" / flink.PROMETHEUS_PLUGIN
    assert jar.name == f"flink-metrics-prometheus-{version}.jar"
    assert jar_version(jar) == version  # the manifest's Implementation-Version


@pytest.mark.parametrize("ports", ["0", "80-70", "9249-", "x", "70000", "1-2-3"])
def test_a_bad_prometheus_port_is_refused_before_anything_starts(
    tmp_path: Path, ports: str
) -> None:
    with pytest.raises(LocalInfraError, match="--prometheus-port"):
        flink.start(18081, instance="unit", paths=LocalPaths(tmp_path), prometheus_port=ports)
    assert not (tmp_path / "flink" / "unit" / "conf").exists()
