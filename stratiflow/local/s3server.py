"""The loopback S3 server behind ``stratiflow local broker start --durable``.

With ``--durable`` the broker (Tansu) keeps its topics through its ``s3://``
storage engine instead of in its own memory, in a bucket served by a moto S3
server on 127.0.0.1. The server runs from a venv of its own
(``.stratiflow/s3-venv``, created on first use by
:func:`stratiflow.local.provision.ensure_s3_venv`), as a detached process per
broker instance, with its PID and port in ``run/s3-<instance>.json`` and its
output in ``logs/s3-<instance>.log``. It is started and stopped separately
from the broker, so a broker that crashed or was stopped comes back with every
topic and record it had acknowledged.

What "durable" means here: the data outlives the *broker* process (SIGKILL,
crash, ``broker stop``/``start --durable``). moto itself keeps objects in
memory, so stopping the S3 server (``broker stop --with-storage``) or the
machine drops them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stratiflow.local import procs, provision
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths, check_instance, local_paths

#: Each broker instance has a server of its own, so one bucket name serves all.
BUCKET = "stratiflow"
#: moto accepts any credentials and region; these fixed ones keep a user's real
#: AWS settings (profiles, session tokens) away from the local broker.
REGION = "us-east-1"
ACCESS_KEY_ID = "stratiflow-local"
SECRET_ACCESS_KEY = "stratiflow-local"

#: Environment of the moto server: none of the project venv's Python settings.
_PYTHON_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")

Log = Callable[[str], object]

# Loopback requests must never go through an HTTP proxy set in the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class S3Info:
    """A running S3 server of broker ``instance``."""

    instance: str
    pid: int
    port: int
    log_file: Path
    bucket: str = BUCKET
    #: True when ``start`` found it already running.
    already_running: bool = False

    @property
    def endpoint(self) -> str:
        """``AWS_ENDPOINT`` for clients."""
        return endpoint_url(self.port)

    @property
    def storage_url(self) -> str:
        """Tansu's ``--storage-engine`` value."""
        return storage_url(self.bucket)


def endpoint_url(port: int) -> str:
    """
    >>> endpoint_url(4566)
    'http://127.0.0.1:4566'
    """
    return f"http://{procs.LOOPBACK}:{port}"


def storage_url(bucket: str = BUCKET) -> str:
    """
    >>> storage_url()
    's3://stratiflow/'
    """
    return f"s3://{bucket}/"


#: ``moto.server``'s own entry point, with the access log (one line per request, so
#: several per record batch the broker stores) turned down to warnings and errors.
_LAUNCHER = (
    "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
    "from moto.server import main; main(sys.argv[1:])"
)


def server_command(python: Path, port: int) -> list[str]:
    """The moto S3 server on ``127.0.0.1:port``, run by the S3 venv's ``python``."""
    return [str(python), "-c", _LAUNCHER, "-H", procs.LOOPBACK, "-p", str(port)]


def _without(base: Mapping[str, str] | None, drop: Callable[[str], bool]) -> dict[str, str]:
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not drop(k)}


def _no_proxy(env: dict[str, str]) -> None:
    hosts = [h for h in env.get("NO_PROXY", env.get("no_proxy", "")).split(",") if h]
    for host in (procs.LOOPBACK, "localhost"):
        if host not in hosts:
            hosts.append(host)
    env["NO_PROXY"] = env["no_proxy"] = ",".join(hosts)


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of the S3 server: ``base`` (default ``os.environ``) without AWS or
    Python-path settings."""
    return _without(base, lambda k: k.startswith("AWS_") or k in _PYTHON_VARS)


def broker_env(endpoint: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for Tansu's ``s3://`` storage engine against ``endpoint``.

    Tansu reads the variables of Rust's ``object_store`` (``AWS_ENDPOINT``,
    ``AWS_ALLOW_HTTP``, ...). Every ``AWS_*`` variable of ``base`` is dropped
    first, so real credentials never reach the local broker.

    >>> env = broker_env("http://127.0.0.1:1234", {"AWS_SESSION_TOKEN": "x", "HOME": "/h"})
    >>> sorted(k for k in env if k.startswith("AWS_"))  # doctest: +NORMALIZE_WHITESPACE
    ['AWS_ACCESS_KEY_ID', 'AWS_ALLOW_HTTP', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT',
     'AWS_SECRET_ACCESS_KEY']
    >>> env["AWS_ENDPOINT"], env["HOME"]
    ('http://127.0.0.1:1234', '/h')
    """
    env = _without(base, lambda k: k.startswith("AWS_"))
    env.update(
        {
            "AWS_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }
    )
    _no_proxy(env)
    return env


def _paths(paths: LocalPaths | None) -> LocalPaths:
    return paths or local_paths()


def _is_our_server(pid: int, port: int) -> bool:
    """Is ``pid`` alive and the moto server we started on ``port``? (PIDs are reused.)"""
    if not procs.pid_alive(pid):
        return False
    args = procs.cmdline(pid)
    if args is None:  # no /proc: trust the PID
        return True
    return any("moto.server" in arg for arg in args) and args[-2:] == ["-p", str(port)]


def status(instance: str = "default", paths: LocalPaths | None = None) -> S3Info | None:
    """The running S3 server of broker ``instance``, or ``None`` (a stale state file
    is removed)."""
    p = _paths(paths)
    pid_file = p.s3_pid_file(instance)
    state = procs.read_pid_state(pid_file)
    if state is None or not _is_our_server(state["pid"], state["port"]):
        pid_file.unlink(missing_ok=True)
        return None
    return S3Info(
        instance=instance,
        pid=state["pid"],
        port=state["port"],
        log_file=Path(state.get("log", p.s3_log(instance))),
        bucket=str(state.get("bucket", BUCKET)),
    )


def _request(method: str, url: str, timeout: float = 5.0) -> int:
    """HTTP status of a request (0 when nothing answered)."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
    try:
        with _HTTP.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def ensure_bucket(info: S3Info) -> None:
    """Create the bucket unless it exists (moto checks no credentials: a plain PUT)."""
    url = f"{info.endpoint}/{info.bucket}"
    if _request("HEAD", url) == 200:
        return
    code = _request("PUT", url)
    if code != 200:
        raise LocalInfraError(
            f"could not create bucket {info.bucket!r} on the S3 server of broker "
            f"{info.instance!r} ({info.endpoint}): HTTP {code or 'no answer'}; "
            f"last lines of {info.log_file}:\n{procs.indented(procs.tail(info.log_file))}"
        )


def start(
    instance: str = "default",
    paths: LocalPaths | None = None,
    *,
    avoid_ports: frozenset[int] = frozenset(),
    log: Log = print,
    ready_timeout: float = 60.0,
) -> S3Info:
    """Start (or find running) the S3 server of broker ``instance``, with its bucket.

    Idempotent: a running server is reused (``already_running=True``), which is
    what keeps a restarted broker's data. A new server listens on a free
    loopback port other than ``avoid_ports``. The S3 venv is created first if
    needed (``log`` reports that, it takes a while).

    Raises
    ------
    LocalInfraError
        The venv cannot be built, or the server did not start or answer.
    """
    check_instance(instance)
    p = _paths(paths)
    existing = status(instance, p)
    if existing is not None:
        ensure_bucket(existing)
        return S3Info(
            instance=instance,
            pid=existing.pid,
            port=existing.port,
            log_file=existing.log_file,
            bucket=existing.bucket,
            already_running=True,
        )
    python = provision.ensure_s3_venv(p, log=log)
    port = procs.free_port()
    while port in avoid_ports:
        port = procs.free_port()
    cmd = server_command(python, port)
    log_file = p.s3_log(instance)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    p.run_dir.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(),
            cwd=p.run_dir,
            start_new_session=True,  # outlives the command (and Ctrl-C) that started it
        )
    procs.remember_child(proc)
    state = {
        "pid": proc.pid,
        "port": port,
        "instance": instance,
        "bucket": BUCKET,
        "log": str(log_file),
        "started_at": time.time(),
        "cmd": cmd,
    }
    p.s3_pid_file(instance).write_text(json.dumps(state, indent=2) + "\n")
    info = S3Info(instance=instance, pid=proc.pid, port=port, log_file=log_file)
    deadline = time.monotonic() + ready_timeout
    while _request("GET", info.endpoint + "/", timeout=2) != 200:
        if proc.poll() is not None:
            p.s3_pid_file(instance).unlink(missing_ok=True)
            raise LocalInfraError(
                f"the S3 server of broker {instance!r} exited with code {proc.returncode} "
                f"during start-up; last lines of {log_file}:\n"
                f"{procs.indented(procs.tail(log_file))}"
            )
        if time.monotonic() > deadline:
            stop(instance, p)
            raise LocalInfraError(
                f"the S3 server of broker {instance!r} did not answer on {info.endpoint} "
                f"within {ready_timeout:.0f} s; last lines of {log_file}:\n"
                f"{procs.indented(procs.tail(log_file))}"
            )
        time.sleep(0.1)
    ensure_bucket(info)
    return info


def stop(instance: str = "default", paths: LocalPaths | None = None, timeout: float = 10.0) -> bool:
    """Stop the S3 server of broker ``instance`` (its data is gone with it).

    Returns
    -------
    bool
        True if a running server was stopped, False if none was running.
    """
    p = _paths(paths)
    info = status(instance, p)
    if info is None:
        return False
    procs.terminate([info.pid], timeout=timeout)
    if procs.pid_alive(info.pid):
        raise LocalInfraError(
            f"the S3 server of broker {instance!r} (pid {info.pid}) did not stop, even on SIGKILL"
        )
    p.s3_pid_file(instance).unlink(missing_ok=True)
    return True
