"""``stratiflow doctor``: is this machine ready to run stratiflow? One line per check.

Each line is ``ok``, ``warn`` or ``FAIL``, the thing checked, and what was found or
what to do::

    ok   java: openjdk 17.0.15 (/usr/bin/java; javac too)
    warn broker: cannot reach the Kafka broker at 127.0.0.1:9092 (...); is it running? ...
    FAIL jars: 94 pinned jars missing (...): run `stratiflow local setup`

``FAIL`` is for what stratiflow cannot work without (Python, its packages, Java, the
pinned jars, a config that loads, TLS settings that work); ``warn`` for what is
optional or not up yet (a stopped broker, a port another program holds, little free
memory or disk, no Chromium). The exit status is 2 when a check failed, else 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TextIO

from packaging.requirements import InvalidRequirement, Requirement

from stratiflow.cli.dashboard import DEFAULT_PORT as DASHBOARD_PORT
from stratiflow.config import Config, ConfigError, load_config
from stratiflow.io.kafka import client_options
from stratiflow.io.preflight import PreflightError, check_reachable, check_tls
from stratiflow.local import broker, flink, provision
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths, local_paths
from stratiflow.local.procs import describe_listener, java_executable, port_is_free

__all__ = ["Check", "add_doctor_command", "run_checks", "version_text"]

Status = Literal["ok", "warn", "FAIL"]

#: The distributions ``--version`` and the package check name, by what people call them.
PACKAGES = {
    "stratiflow": "stratiflow",
    "PyFlink": "apache-flink",
    "River": "river",
    "kafka-python": "kafka-python",
}
#: Java versions Flink 2 supports.
JAVA_SUPPORTED = (11, 17, 21)
#: Below these, a job on the embedded MiniCluster (about 1.4 GB at its peak) plus the
#: local broker (512 MB heap) may not fit.
MIN_MEMORY_GIB = 2.0
MIN_DISK_GIB = 2.0
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Maven and the JDK tools print in colour on a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Check:
    """What one check found.

    >>> print(Check("broker", "warn", "nothing answers at 127.0.0.1:9092").line())
    warn broker: nothing answers at 127.0.0.1:9092
    """

    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


# -- versions -------------------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_text() -> str:
    """What ``stratiflow --version`` prints: stratiflow's version and its engines'.

    >>> version_text().startswith("stratiflow ")
    True
    """
    others = ", ".join(
        f"{name} {_version(dist) or 'not installed'}"
        for name, dist in PACKAGES.items()
        if name != "stratiflow"
    )
    own = _version("stratiflow") or "unknown"
    return f"stratiflow {own} (Python {platform.python_version()}, {others})"


# -- the checks -----------------------------------------------------------------------------


def check_python() -> Check:
    version = platform.python_version()
    where = sys.prefix if sys.prefix != sys.base_prefix else None
    if sys.version_info[:2] != (3, 11):
        return Check("python", "FAIL", f"{version} ({sys.executable}): stratiflow needs 3.11")
    if where is None:
        return Check(
            "python",
            "warn",
            f"{version} ({sys.executable}), not in a virtual environment "
            "(`make setup` makes .venv)",
        )
    return Check("python", "ok", f"{version} in {where}")


def _requirements() -> Iterator[Requirement]:
    for text in importlib.metadata.requires("stratiflow") or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            yield requirement


def check_packages() -> Check:
    if _version("stratiflow") is None:
        return Check("packages", "FAIL", "stratiflow is not installed here: run `make setup`")
    problems = []
    for requirement in _requirements():
        found = _version(requirement.name)
        if found is None:
            problems.append(f"{requirement.name} is missing")
        elif not requirement.specifier.contains(found, prereleases=True):
            problems.append(f"{requirement.name} {found} installed, {requirement} needed")
    try:
        provision.pyflink_home()
    except LocalInfraError as exc:
        problems.append(str(exc))
    if problems:
        return Check(
            "packages", "FAIL", "; ".join(problems) + " (`make setup` installs what is pinned)"
        )
    found = ", ".join(f"{dist} {_version(dist)}" for dist in PACKAGES.values())
    return Check("packages", "ok", found)


def _run(command: list[str], timeout: float = 30.0) -> str | None:
    """What ``command`` prints (stdout and stderr), or ``None`` when it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return _ANSI.sub("", done.stdout + done.stderr)


def java_major(version: str) -> int | None:
    """The major version in what ``java -version`` prints.

    >>> java_major('openjdk version "17.0.15" 2025-04-15'), java_major('java version "1.8.0_392"')
    (17, 8)
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> Check:
    try:
        java = java_executable("the local broker, the Flink cluster and every job")
    except LocalInfraError as exc:
        return Check("java", "FAIL", str(exc))
    output = _run([java, "-version"])
    first = (output or "").strip().splitlines()[:1]
    major = java_major(output or "")
    if major is None:
        return Check("java", "FAIL", f"{java} -version did not say its version: {first}")
    javac = "javac too" if shutil.which("javac") else "no javac: `local setup` needs a JDK"
    detail = f"{' '.join(first[0].split()[:3])} ({java}; {javac})"
    if major < min(JAVA_SUPPORTED):
        return Check("java", "FAIL", f"{detail}: Flink 2 needs Java 11 or later (17 is tested)")
    if major not in JAVA_SUPPORTED:
        return Check("java", "warn", f"{detail}: Flink 2 supports Java 11, 17 and 21 only")
    return Check("java", "ok", detail)


def check_jars(paths: LocalPaths) -> Check:
    found, problems = provision.installed_problems(paths)
    if problems:
        return Check(
            "jars",
            "FAIL",
            f"{'; '.join(problems)} in {paths.home}: run `stratiflow local setup` "
            "(or `make setup`)",
        )
    return Check(
        "jars",
        "ok",
        f"{found} pinned jars match their SHA-256 (Kafka {provision.KAFKA_VERSION}, "
        f"flink-connector-kafka {provision.CONNECTOR_VERSIONS['flink-connector-kafka']}) "
        f"in {paths.home}",
    )


def check_maven(jars: Check) -> Check:
    mvn = shutil.which("mvn")
    if mvn is None:
        if jars.status == "ok":
            return Check("maven", "ok", "not installed; only `stratiflow local setup` needs it")
        return Check(
            "maven",
            "FAIL",
            "`mvn` not found, and the jars need resolving: install Maven "
            "(e.g. `apt-get install maven`), then run `stratiflow local setup`",
        )
    first = (_run([mvn, "-B", "-v"]) or "").strip().splitlines()[:1]
    return Check("maven", "ok", f"{first[0] if first else 'version unknown'} ({mvn})")


def check_config(
    args: argparse.Namespace, config_from: Callable[..., Config]
) -> tuple[Check, Config]:
    """The config the other checks use (``--config``, ``--set``, ``--bootstrap-servers``)."""
    try:
        cfg = config_from(args, check_model=args.config is not None or bool(args.set))
    except ConfigError as exc:
        # The other checks go on with the defaults (and the broker asked for).
        servers = {"kafka.bootstrap_servers": args.bootstrap_servers}
        fallback = load_config(None, servers if args.bootstrap_servers else {}, check_model=False)
        return Check("config", "FAIL", str(exc)), fallback
    if args.config is None:
        return Check("config", "ok", "the defaults (no --config)"), cfg
    return Check("config", "ok", f"{args.config} is valid (the model builds)"), cfg


def check_broker(cfg: Config, timeout_s: float = 3.0) -> Check:
    servers, props = cfg.kafka.bootstrap_servers, cfg.kafka.properties
    try:
        check_reachable(servers, timeout_s=timeout_s)
    except PreflightError as exc:
        return Check("broker", "warn", str(exc))
    try:
        check_tls(servers, props, timeout_s=timeout_s)
        client_options(props)
        answers = broker.kafka_ready(servers, props)
    except (PreflightError, ConfigError) as exc:
        return Check("broker", "FAIL", str(exc))
    except Exception as exc:  # a client setting kafka-python refuses
        return Check("broker", "FAIL", f"the Kafka client cannot connect to {servers}: {exc}")
    if not answers:
        return Check(
            "broker",
            "warn",
            f"something accepts connections at {servers} but does not answer as a Kafka "
            "broker (still starting? another program?)",
        )
    local = broker.status()
    mine = f" (the local broker, pid {local.pid})" if local and local.bootstrap == servers else ""
    return Check("broker", "ok", f"Kafka answers at {servers}{mine}")


def check_flink(paths: LocalPaths) -> Check:
    info = flink.status(paths=paths)
    if info is not None:
        return Check(
            "flink",
            "ok",
            f"local cluster running: Web UI {info.web_ui}, {info.taskmanagers} TaskManager(s), "
            f"{info.slots_available}/{info.slots_total} slots free, "
            f"{info.jobs_running} running job(s)",
        )
    pids = flink.running_pids(paths=paths)
    if pids:
        return Check(
            "flink",
            "warn",
            f"local cluster processes ({', '.join(map(str, pids))}) but its REST API does not "
            "answer: starting, or hung (`stratiflow local flink stop` cleans up)",
        )
    return Check(
        "flink",
        "ok",
        "no local cluster running (optional: `submit` runs a job on an embedded MiniCluster; "
        "`stratiflow local flink start` starts a standalone one)",
    )


def check_ports(paths: LocalPaths, ports: Mapping[int, str] | None = None) -> Check:
    """Whether the default ports of the local broker, Flink and the dashboard are free,
    or held by the local service that should hold them."""
    if ports is None:
        ports = {
            broker.DEFAULT_PORT: "broker",
            flink.DEFAULT_REST_PORT: "Flink REST",
            DASHBOARD_PORT: "dashboard",
        }
    local_broker = broker.status(paths=paths)
    local_flink = flink.status(paths=paths)
    owners = {}
    if local_broker is not None:
        owners[local_broker.port] = f"the local broker (pid {local_broker.pid})"
    if local_flink is not None:
        owners[local_flink.rest_port] = "the local Flink cluster"
    parts, taken = [], []
    for port, what in ports.items():
        if port in owners:
            parts.append(f"{port} ({what}) in use by {owners[port]}")
        elif port_is_free(port):
            parts.append(f"{port} ({what}) free")
        else:
            holder = describe_listener(port) or "another program"
            taken.append(f"{port} ({what}) is taken by {holder}")
    if taken:
        return Check(
            "ports",
            "warn",
            "; ".join(taken)
            + ": give the local service another one with --port"
            + (f" ({'; '.join(parts)})" if parts else ""),
        )
    return Check("ports", "ok", "; ".join(parts))


def _meminfo(path: Path) -> dict[str, int]:
    values = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name] = int(fields[0]) * 1024  # kB
    return values


def check_memory(meminfo: Path = Path("/proc/meminfo")) -> Check:
    try:
        values = _meminfo(meminfo)
        available, total = values["MemAvailable"], values["MemTotal"]
    except (OSError, KeyError):
        return Check("memory", "warn", f"cannot read {meminfo} (not Linux?)")
    gib = 1 << 30
    detail = f"{available / gib:.1f} GiB available of {total / gib:.1f} GiB"
    if available / gib < MIN_MEMORY_GIB:
        return Check(
            "memory",
            "warn",
            f"{detail}: a job on the embedded MiniCluster and the local broker want about "
            f"{MIN_MEMORY_GIB:.0f} GiB; stop other programs",
        )
    return Check("memory", "ok", detail)


def check_disk(paths: LocalPaths) -> Check:
    where = paths.home
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free / (1 << 30)
    detail = f"{free:.1f} GiB free at {where}"
    if free < MIN_DISK_GIB:
        return Check("disk", "warn", f"{detail}: broker data and checkpoints need room")
    return Check("disk", "ok", detail)


def check_chromium(names: Iterable[str] = CHROMIUM_NAMES) -> Check:
    for name in names:
        found = shutil.which(name)
        if found:
            return Check("chromium", "ok", found)
    return Check(
        "chromium",
        "warn",
        "not found: only the dashboard's browser features need it (`apt-get install chromium`)",
    )


# -- the command ----------------------------------------------------------------------------


def run_checks(args: argparse.Namespace, config_from: Callable[..., Config]) -> Iterator[Check]:
    """Every check, in order, each as soon as it is done."""
    paths = local_paths()
    yield check_python()
    yield check_packages()
    yield check_java()
    jars = check_jars(paths)
    yield jars
    yield check_maven(jars)
    config, cfg = check_config(args, config_from)
    yield config
    yield check_broker(cfg)
    yield check_flink(paths)
    yield check_ports(paths)
    yield check_memory()
    yield check_disk(paths)
    yield check_chromium()


def summary(checks: list[Check]) -> str:
    """The last line.

    >>> summary([Check("a", "ok", ""), Check("b", "warn", ""), Check("c", "FAIL", "")])
    'doctor: 1 ok, 1 warning, 1 failed (c)'
    """
    count = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "FAIL")}
    failed = [c.name for c in checks if c.status == "FAIL"]
    warnings = f"{count['warn']} warning{'' if count['warn'] == 1 else 's'}"
    text = f"doctor: {count['ok']} ok, {warnings}, {count['FAIL']} failed"
    return text + (f" ({', '.join(failed)})" if failed else "")


def _cmd(
    args: argparse.Namespace, config_from: Callable[..., Config], out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    checks = []
    for check in run_checks(args, config_from):
        checks.append(check)
        print(check.line(), file=out, flush=True)
    print(summary(checks), file=out, flush=True)
    return 2 if any(c.status == "FAIL" for c in checks) else 0


def add_doctor_command(
    subparsers: Any,
    add_config_args: Callable[[argparse.ArgumentParser], None],
    config_from: Callable[..., Config],
) -> None:
    """Register ``doctor`` under an argparse ``subparsers`` object.

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
        "doctor",
        help="check this machine: Python and packages, Java, Maven, the pinned jars, the "
        "broker, the local Flink cluster, ports, memory, disk, Chromium",
        description=__doc__.split("\n\n")[-1].replace("\n", " "),
    )
    add_config_args(p)
    p.set_defaults(func=partial(_cmd, config_from=config_from))
