"""The Flink execution environment for stratiflow jobs."""

from __future__ import annotations

import os
import site
import sys

from py4j.java_gateway import java_import
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import add_jars_to_context_class_loader

from stratiflow.config import Config
from stratiflow.io.kafka import secret_environ
from stratiflow.io.preflight import PreflightError, check_jars
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.flink import prometheus_options, prometheus_plugin_jar
from stratiflow.local.paths import local_paths
from stratiflow.local.procs import python_worker_executable

#: PyFlink's switch between Python workers in the client process and worker processes.
LOOPBACK_SWITCH = "_python_worker_execution_mode"
#: ``python.fn-execution.bundle.time`` unless ``job.flink`` says otherwise (ms).
BUNDLE_TIME_MS = 100


class SetupError(RuntimeError):
    """Something the job needs on this machine is missing."""


def launched_by_flink_cli() -> bool:
    """True under ``flink run -py`` (the CLI starts the gateway and tells us its port)."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def connector_jars() -> list[str]:
    """file:// URLs of the jars every job ships; a clear error when they are missing."""
    try:
        return [jar.as_uri() for jar in check_jars(local_paths().lib_dir)]
    except PreflightError as exc:
        raise SetupError(str(exc)) from None


def _load_prometheus_reporter() -> None:
    """Make Flink's Prometheus reporter loadable by the MiniCluster ``execute`` starts.

    A MiniCluster finds metric reporters only on its class path (the plugin folder that
    PyFlink's gateway sets, ``FLINK_PLUGINS_DIR``, serves file systems, not reporters), so
    the reporter jar that Flink's distribution ships as a plugin joins the context class
    loader of this thread, the one that later starts the MiniCluster. Not shipped with the
    job (``pipeline.jars``): a cluster's reporters are the cluster's.
    """
    try:
        jar = prometheus_plugin_jar()
    except LocalInfraError as exc:
        raise SetupError(str(exc)) from None
    add_jars_to_context_class_loader([jar.as_uri()])


def create_env(
    cfg: Config, *, embedded: bool | None = None, savepoint: str | None = None
) -> StreamExecutionEnvironment:
    """An environment configured from ``cfg``: parallelism, checkpoints, Python mode, jars.

    ``embedded`` (default: not launched by ``flink run``) means a local
    MiniCluster in this process, whose Python workers must use this venv.
    """
    if embedded is None:
        embedded = not launched_by_flink_cli()
    jars = connector_jars()
    if embedded:
        # The MiniCluster's JVM (started by Configuration()) and its Python workers inherit
        # this environment, and Beam logs a worker's whole environment into the Flink log:
        # Kafka secrets the config read from it (${VAR}) leave it first; the source and
        # sinks get them from cfg.
        for name in secret_environ(cfg.kafka.properties, os.environ):
            del os.environ[name]
    pythonpath = os.environ.get("PYTHONPATH")
    if embedded and cfg.job.python_execution_mode == "thread":
        # The embedded interpreter finds pemja and river only through PYTHONPATH, which
        # the JVM must have when Configuration() starts it (a JVM this process already
        # started keeps its environment: thread mode then fails with "No module named
        # 'pemja'"). Restored below: anything this process starts later (a pip, another
        # venv's Python) must not see this venv's packages.
        paths = [*site.getsitepackages(), pythonpath or ""]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if embedded:
        # PyFlink runs a MiniCluster's Python operators inside this (the client) process
        # ("loopback") unless told otherwise: every operator and subtask then shares one
        # GIL with py4j and gRPC, and parallelism 2 is no faster than 1. A worker process
        # per task, as on a real cluster, is.
        os.environ.setdefault(LOOPBACK_SWITCH, "process")
    config = Configuration()
    if pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath
    config.set_string("python.execution-mode", cfg.job.python_execution_mode)
    if embedded:
        worker = sys.executable
        if cfg.job.python_execution_mode == "process":
            worker = python_worker_executable(sys.executable)  # Beam tuned, same interpreter
        config.set_string("python.executable", worker)
        config.set_string("python.client.executable", sys.executable)
    config.set_string("state.backend.type", cfg.job.state_backend)
    if savepoint:
        config.set_string("execution.savepoint.path", savepoint)
    if cfg.job.checkpoint_dir:
        config.set_string("execution.checkpointing.dir", cfg.job.checkpoint_dir)
    if cfg.job.restart_attempts:
        config.set_string("restart-strategy.type", "fixed-delay")
        config.set_string("restart-strategy.fixed-delay.attempts", str(cfg.job.restart_attempts))
        config.set_string("restart-strategy.fixed-delay.delay", f"{cfg.job.restart_delay_ms} ms")
    else:
        config.set_string("restart-strategy.type", "none")
    # A Python operator hands its outputs to Flink when a bundle ends: every 1000 ms by
    # default, which alone would put ~0.5-1 s on each prediction at moderate rates.
    config.set_string("python.fn-execution.bundle.time", str(BUNDLE_TIME_MS))
    if cfg.job.python_execution_mode == "thread":
        # In thread mode every Python operator of a task adds an interpreter thread state to
        # the task's thread, and pybind11 (scipy, imported by river) then waits forever for
        # the GIL its own thread holds (pybind/pybind11#1975): any graph with Python
        # operators Flink chains into one task hung (the sampled graph; the backtest's
        # output maps after the model). Unchained, each has a thread of its own.
        config.set_string("pipeline.operator-chaining.enabled", "false")
    if cfg.job.prometheus_port:
        if embedded:
            for key, value in prometheus_options(cfg.job.prometheus_port).items():
                config.set_string(key, value)
        else:
            print(
                "note: job.prometheus_port serves the metrics of a job's own MiniCluster; a "
                "cluster's Prometheus reporter is set in the cluster's configuration "
                "(`stratiflow local flink start --prometheus-port`, deploy/)",
                file=sys.stderr,
            )
    for key, value in cfg.job.flink.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if embedded and cfg.job.prometheus_port:
        _load_prometheus_reporter()
    env.set_parallelism(cfg.job.parallelism)
    env.get_config().set_auto_watermark_interval(cfg.sampling.watermark_interval)
    if cfg.job.checkpoint_interval_ms > 0:
        env.enable_checkpointing(cfg.job.checkpoint_interval_ms)
    env.add_jars(*jars)
    # PyFlink builds keyed Python operators from ``gateway.jvm.ExternalPythonKeyedProcessOperator``
    # (a wildcard import); a single import wins over it, so every keyed operator of this job
    # is ours, which checkpoints the timers of the last bundle before a barrier
    # (stratiflow/local/java/ExternalPythonKeyedProcessOperator.java).
    java_import(get_gateway().jvm, "io.stratiflow.flink.ExternalPythonKeyedProcessOperator")
    return env
