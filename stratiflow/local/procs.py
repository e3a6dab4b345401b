"""Process and port helpers shared by the broker and the Flink cluster.

Everything here is stdlib-only and works on Linux; where ``/proc`` is missing
(macOS) the helpers degrade to less precise answers instead of failing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stratiflow.local.errors import LocalInfraError, PortInUseError

LOOPBACK = "127.0.0.1"


def java_executable(needed_by: str) -> str:
    """``$JAVA_HOME/bin/java`` if there is one, else ``java`` on PATH.

    Raises
    ------
    LocalInfraError
        Neither exists; the message says that ``needed_by`` needs a Java 17 JDK.
    """
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise LocalInfraError(
            f"`java` not found (neither $JAVA_HOME/bin/java nor on PATH): {needed_by} "
            "needs a Java 17 JDK; install one (e.g. `apt-get install openjdk-17-jdk-headless`)"
        )
    return found


def python_worker_executable(python: str) -> str:
    """What ``python.executable`` names for process-mode Python workers: the
    ``stratiflow-python-worker`` script next to ``python`` (it tunes Beam before the worker
    starts, see ``stratiflow.operators.worker``), else ``python`` itself."""
    script = Path(python).parent / "stratiflow-python-worker"
    return str(script) if script.is_file() and os.access(script, os.X_OK) else python


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600), even if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above applies only when the file is created
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


# Children started by this Python process. Keeping the Popen objects lets
# ``terminate`` reap them (otherwise a stopped child lingers as a zombie that
# still answers ``kill -0``) and avoids "subprocess still running" warnings.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def remember_child(proc: subprocess.Popen[bytes]) -> None:
    """Keep ``proc`` so that it can be reaped when it is stopped."""
    _CHILDREN[proc.pid] = proc


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out to outgoing connections (Linux default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now, below the ephemeral range.

    A port the kernel picks for ``bind(0)`` comes from the range it also uses for
    every outgoing connection: on a machine busy with Kafka clients one of them
    can take it before the server binds it. A random port between 10000 and the
    start of that range does not have this race (other processes may still take
    it: callers that bind later still have to handle "address in use").
    """
    low, _ = _ephemeral_range()
    if low > 11000:
        for _ in range(200):
            port = random.randrange(10000, low)
            if port_is_free(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Tell whether a server could listen on ``host:port``.

    SO_REUSEADDR mirrors what the JVM does, so connections of a
    previous server still in TIME_WAIT do not count as "taken", but a listener
    on the port (or on 0.0.0.0) does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def describe_listener(port: int) -> str | None:
    """Name the process listening on ``port`` if ``ss`` can tell cheaply."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    try:
        out = subprocess.run(
            [ss, "-Hltnp", f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    if match:
        return f"{match.group(1)} (pid {match.group(2)})"
    return None


def ensure_port_free(port: int, what: str, hint: str, host: str = LOOPBACK) -> None:
    """Raise ``LocalInfraError`` if ``port`` is taken on ``host`` (loopback by default)."""
    if not 0 < port < 65536:
        raise LocalInfraError(f"invalid port {port} for {what}: use 1-65535")
    if port_is_free(port, host):
        return
    holder = describe_listener(port)
    by = f" by {holder}" if holder else ""
    raise PortInUseError(f"cannot start {what}: port {port} is already in use{by}. {hint}", port)


def _proc_state(pid: int) -> str | None:
    """The one-letter state from ``/proc/<pid>/stat`` (``None`` if unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[0]


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del _CHILDREN[pid]
        return
    # Not started through Popen here but maybe still our child (fork elsewhere).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """Tell whether ``pid`` is a running (not zombie) process."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return _proc_state(pid) != "Z"


def cmdline(pid: int) -> list[str] | None:
    """The arguments of ``pid`` or ``None`` where ``/proc`` cannot tell."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid_state(pid_file: Path) -> dict[str, Any] | None:
    """The JSON state file of a process we started, if it names an int ``pid`` and ``port``."""
    try:
        data = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if not isinstance(data.get("pid"), int) or not isinstance(data.get("port"), int):
        return None
    return data


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 when it is gone or there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """PIDs of every process below ``pid`` (from /proc; empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pids_matching(needle: str) -> list[int]:
    """PIDs of live processes whose command line contains ``needle``."""
    found: list[int] = []
    me = os.getpid()
    proc_root = Path("/proc")
    if proc_root.is_dir():
        for entry in proc_root.iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            args = cmdline(int(entry.name))
            if args and any(needle in arg for arg in args) and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        return sorted(found)
    pgrep = shutil.which("pgrep")
    if pgrep is None:
        return []
    out = subprocess.run(
        [pgrep, "-f", re.escape(needle)], capture_output=True, text=True, check=False
    ).stdout
    return sorted(int(p) for p in out.split() if p.isdigit() and int(p) != me)


def terminate(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM ``pids``, wait up to ``timeout`` s, then SIGKILL what is left.

    Returns the PIDs that were alive when asked to stop.
    """
    alive = [pid for pid in pids if pid_alive(pid)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in alive):
        time.sleep(0.1)
    for pid in alive:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(pid_alive(p) for p in alive):
        time.sleep(0.05)
    return alive


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def indented(text: str, prefix: str = "  | ") -> str:
    """``text`` with every line prefixed, for log tails inside messages."""
    return "\n".join(prefix + line for line in text.splitlines())


#: Variables a PyFlink client process sets on itself while it runs a job (gateway port,
#: loopback server, worker settings) or that point at one Flink distribution. A job or
#: cluster started afterwards from that process must not inherit them: with
#: PYFLINK_GATEWAY_DISABLED set, for one, a new job refuses to start its gateway.
PYFLINK_RUNTIME_VARS = (
    "PYFLINK_GATEWAY_DISABLED",
    "PYFLINK_GATEWAY_PORT",
    "_PYFLINK_CONN_INFO_PATH",
    "PYTHON_LOOPBACK_SERVER_ADDRESS",
    "_PYTHON_WORKER_MEMORY_LIMIT",
    "BOOT_LOG_DIR",
    "SEMI_PERSISTENT_DIRECTORY",
    "FLINK_HOME",
    "_FLINK_HOME_DETERMINED",
    "FLINK_CONF_DIR",
    "FLINK_LIB_DIR",
    "FLINK_OPT_DIR",
    "FLINK_PLUGINS_DIR",
    "FLINK_BIN_DIR",
)


def job_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment fit for starting a new Flink job or cluster."""
    source = dict(os.environ) if base is None else base
    return {k: v for k, v in source.items() if k not in PYFLINK_RUNTIME_VARS}
