"""Kafka clients for the CLI and tests (kafka-python), configured like the job.

The job's ``kafka.properties`` use the Java client's property names, because
they go unchanged to Flink's source and sink. :func:`client_options` translates
the ones kafka-python understands, so one config drives both, security settings
included.

>>> client_options({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
...                 "ssl.truststore.location": "/ca.pem", "ssl.truststore.type": "PEM"})
{'security_protocol': 'SASL_SSL', 'sasl_mechanism': 'SCRAM-SHA-512', 'ssl_cafile': '/ca.pem'}

Credentials can come from a file through Kafka's own config providers
(``config.providers: file`` with ``FileConfigProvider``, then
``${file:/path/secrets.properties:key}``): the Java client resolves them itself,
and :func:`client_options` reads the same file for kafka-python.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stratiflow.config import ConfigError, redact

# Java client property → kafka-python keyword. Properties kafka-python has no
# equivalent for (or that only the JVM needs) are skipped, never guessed.
_JAVA_TO_PYTHON = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.truststore.location": "ssl_cafile",
    "ssl.keystore.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "ssl.endpoint.identification.algorithm": "ssl_check_hostname",
    "client.id": "client_id",
    "request.timeout.ms": "request_timeout_ms",
}
_JAAS_RE = re.compile(r'(username|password)\s*=\s*"([^"]*)"')
#: Files kafka-python reads as PEM only; the property that says the file's type.
_PEM_FILES = {
    "ssl.truststore.location": "ssl.truststore.type",
    "ssl.keystore.location": "ssl.keystore.type",
}
#: Kafka config-provider references, as the Java client's ConfigTransformer reads them.
_PROVIDER_RE = re.compile(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}")
_FILE_PROVIDERS = {
    "org.apache.kafka.common.config.provider.FileConfigProvider": "file",
    "org.apache.kafka.common.config.provider.DirectoryConfigProvider": "dir",
}


def client_options(properties: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python keyword arguments equivalent to Java client properties.

    Credentials inside ``sasl.jaas.config`` (``username="..." password="..."``)
    are extracted for kafka-python's SASL/PLAIN and SCRAM support. Trust and key
    stores must be PEM files (``ssl.*store.type: PEM``, the default here), and
    ``${file:...}``/``${dir:...}`` references are resolved (see
    :func:`resolve_providers`).

    Raises
    ------
    ConfigError
        A JKS/PKCS12 store, or a file reference that cannot be resolved.
    """
    properties = resolve_providers(properties)
    out: dict[str, Any] = {}
    for key, value in properties.items():
        target = _JAVA_TO_PYTHON.get(key)
        kind = properties.get(_PEM_FILES[key], "PEM") if key in _PEM_FILES else "PEM"
        if kind.strip().upper() != "PEM":
            raise ConfigError(
                f"kafka.properties.{_PEM_FILES[key]}",
                f"{kind!r}: the CLI's Kafka client (kafka-python) reads PEM files only; "
                "use a PEM file and type PEM, which the Flink source and sinks read too",
            )
        if target == "ssl_check_hostname":
            out[target] = value.strip().lower() == "https"
        elif target == "request_timeout_ms":
            out[target] = int(value)
        elif target is not None:
            out[target] = value
        elif key == "sasl.jaas.config":
            for name, secret in _JAAS_RE.findall(value):
                out[f"sasl_plain_{name}"] = secret
    return out


def resolve_providers(properties: Mapping[str, str]) -> dict[str, str]:
    """``properties`` with the references to Kafka's file-based config providers replaced
    by what the Java client reads: ``${NAME:PATH:KEY}`` for a ``FileConfigProvider`` (KEY
    in a ``key=value`` properties file) and ``${NAME:DIR:FILE}`` for a
    ``DirectoryConfigProvider`` (the whole file), for the NAMEs in ``config.providers``.

    Other references are left to the Java client:

    >>> resolve_providers({"ssl.key.password": "${vault:kafka/tls:pw}"})
    {'ssl.key.password': '${vault:kafka/tls:pw}'}
    """
    kinds = {
        name: _FILE_PROVIDERS.get(properties.get(f"config.providers.{name}.class", ""))
        for name in (n.strip() for n in properties.get("config.providers", "").split(","))
    }
    out = dict(properties)
    for prop, value in properties.items():

        def sub(match: re.Match[str], prop: str = prop) -> str:
            name, path, key = match.groups()
            kind = kinds.get(name)
            if kind is None or path is None:
                return match.group(0)  # not a file provider: the Java client's business
            where = f"kafka.properties.{prop}"
            try:
                if kind == "dir":
                    return (Path(path) / key).read_text()
                return _read_properties(Path(path))[key]
            except OSError as exc:
                raise ConfigError(where, f"cannot read {exc.filename}: {exc.strerror}") from None
            except KeyError:
                raise ConfigError(where, f"{path} has no key {key!r}") from None

        out[prop] = _PROVIDER_RE.sub(sub, value)
    return out


def _read_properties(path: Path) -> dict[str, str]:
    """A Java ``.properties`` file of simple ``key=value`` (or ``key: value``) lines."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and line[0] not in "#!":
            key, *value = re.split(r"\s*[=:]\s*", line, maxsplit=1)
            values[key] = value[0] if value else ""
    return values


def secret_environ(properties: Mapping[str, str], environ: Mapping[str, str]) -> list[str]:
    """Names of the environment variables that hold a secret Kafka property: the whole
    value of one :func:`~stratiflow.config.redact` masks, or a quoted part of one (a
    password inside ``sasl.jaas.config``).

    >>> secret_environ({"ssl.key.password": "pw-123", "security.protocol": "SSL"},
    ...                {"KEY_PW": "pw-123", "PROTO": "SSL", "HOME": "/root"})
    ['KEY_PW']
    """
    masked = redact(properties)
    secrets = [v for k, v in properties.items() if masked[k] != v]
    return [
        name
        for name, value in environ.items()
        if value and any(value == s or f'"{value}"' in s for s in secrets)
    ]


def producer(bootstrap: str, properties: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
    """A kafka-python producer tuned for bulk sends (batched, acks=all)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
    }
    options.update(client_options(properties or {}))
    idempotence = (properties or {}).get("enable.idempotence")
    if idempotence is not None:  # a producer-only setting, like the Java client's
        options["enable_idempotence"] = idempotence.strip().lower() == "true"
    options.update(kwargs)
    return KafkaProducer(**options)


def consumer(bootstrap: str, properties: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
    """A kafka-python consumer without a group (partitions are assigned manually)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_auto_commit": False,
        "group_id": None,
        # The job's sinks write in transactions (exactly-once): show committed records only.
        "isolation_level": "read_committed",
    }
    options.update(client_options(properties or {}))
    options.update(kwargs)
    return KafkaConsumer(**options)


def _admin(bootstrap: str, properties: Mapping[str, str] | None) -> Any:
    return KafkaAdminClient(bootstrap_servers=bootstrap, **client_options(properties or {}))


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet, with the given partition counts."""
    admin = _admin(bootstrap, properties)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, num_partitions=n, replication_factor=1)
            for name, n in topics.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently
                admin.create_topics(new)
    finally:
        admin.close()


def partitions(
    bootstrap: str, topic: str, properties: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> list[int]:
    """The topic's partition ids (waits briefly for metadata after auto-creation)."""
    client = consumer(bootstrap, properties, bootstrap_timeout_ms=int(timeout_s * 1000))
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            found = client.partitions_for_topic(topic)
            if found:
                return sorted(found)
            if time.monotonic() > deadline:
                return []
            client.topics()  # refresh metadata
            time.sleep(0.2)
    finally:
        client.close()


def end_offsets(
    bootstrap: str, topic: str, properties: Mapping[str, str] | None = None
) -> dict[int, int]:
    """Where a ``read_committed`` reader of ``topic`` stops now, per partition.

    That is each partition's last stable offset: the high-water mark, unless a
    transaction is still open, whose records a committed read cannot pass yet.
    """

    ids = partitions(bootstrap, topic, properties)
    if not ids:
        return {}
    client = consumer(bootstrap, properties)
    try:
        reported = client.end_offsets([TopicPartition(topic, p) for p in ids])
        return {tp.partition: int(offset) for tp, offset in reported.items()}
    finally:
        client.close()


def count_records(
    bootstrap: str,
    topic: str,
    properties: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 60.0,
) -> int:
    """How many committed records ``topic`` holds now (``timeout_s``: without progress).

    Not the sum of end offsets: on a topic written in transactions (the job's
    exactly-once sinks) every commit marker takes an offset, and aborted records
    take theirs. This reads up to each partition's last stable offset, which a
    ``read_committed`` consumer's end offset is, and counts what it gets.
    """

    ids = partitions(bootstrap, topic, properties)
    if not ids:  # not created yet (a job's output topic before its first record)
        return 0
    # Large fetches: counting a million records one default-sized fetch at a time is slow.
    client = consumer(
        bootstrap, properties, fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20
    )
    try:
        tps = [TopicPartition(topic, p) for p in ids]
        client.assign(tps)
        client.seek_to_beginning(*tps)
        ends = client.end_offsets(tps)
        seen = 0
        last_progress = time.monotonic()
        while any(client.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() - last_progress > timeout_s:
                raise TimeoutError(f"counting {topic}: nothing came for {timeout_s:.0f} s")
            for records in client.poll(timeout_ms=200, max_records=100_000).values():
                seen += len(records)
                last_progress = time.monotonic()
        return seen
    finally:
        client.close()


def read_topic(
    bootstrap: str,
    topic: str,
    properties: Mapping[str, str] | None = None,
    *,
    from_beginning: bool = True,
    idle_timeout_s: float = 3.0,
    max_records: int | None = None,
    follow: bool = False,
    read_uncommitted: bool = False,
) -> Iterator[Any]:
    """Yield the committed records of every partition of ``topic``.

    Stops after ``max_records``, or when nothing arrived for ``idle_timeout_s``
    (unless ``follow``, which waits forever). ``read_uncommitted`` also shows
    records of open and aborted transactions (for debugging).
    """

    ids = partitions(bootstrap, topic, properties, timeout_s=idle_timeout_s if not follow else 60)
    if not ids:
        return
    isolation = "read_uncommitted" if read_uncommitted else "read_committed"
    client = consumer(bootstrap, properties, isolation_level=isolation)
    try:
        tps = [TopicPartition(topic, p) for p in ids]
        client.assign(tps)
        if from_beginning:
            client.seek_to_beginning(*tps)
        else:
            client.seek_to_end(*tps)
        seen = 0
        last = time.monotonic()
        while True:
            batch = client.poll(timeout_ms=200)
            if batch:
                last = time.monotonic()
            for records in batch.values():
                for record in records:
                    yield record
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
            if not follow and time.monotonic() - last > idle_timeout_s:
                return
    finally:
        client.close()


#: Transaction states in which a transaction still holds back ``read_committed`` readers.
OPEN_TRANSACTION_STATES = ("Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence")


@dataclass(frozen=True)
class OpenTransaction:
    """A transaction the broker's coordinator holds open."""

    transactional_id: str
    state: str
    producer_id: int
    producer_epoch: int
    #: When it started (epoch ms) and after how long the broker aborts it by itself.
    started_ms: int
    timeout_ms: int
    partitions: tuple[str, ...]

    def age_s(self, now_ms: float | None = None) -> float:
        now_ms = time.time() * 1000 if now_ms is None else now_ms
        return max(now_ms - self.started_ms, 0) / 1000


def open_transactions(
    bootstrap: str,
    prefix: str,
    properties: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 30.0,
) -> list[OpenTransaction]:
    """The open transactions whose transactional id starts with ``prefix``, oldest first.

    A Flink job's exactly-once sinks use ids ``<prefix>-<subtask>-<checkpoint>``;
    one its job left open when it died blocks ``read_committed`` readers of the
    partitions it wrote to until it is aborted or times out.
    """

    admin = _admin(bootstrap, properties)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                listed = admin.list_transactions(state_filters=list(OPEN_TRANSACTION_STATES))
                break
            except KafkaError as exc:
                # e.g. the coordinator still loading its log after a (re)start
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        ids = sorted(
            {t.transactional_id for rows in listed.values() for t in rows}
            - {""}  # idempotent producers are listed without an id
        )
        ids = [i for i in ids if i.startswith(prefix)]
        try:
            described = admin.describe_transactions(ids) if ids else {}
        except KafkaError:
            # One id's error fails the whole request (say, a transaction that ended and
            # expired since the listing): ask for each alone and skip those.
            described = {}
            for tid in ids:
                with contextlib.suppress(KafkaError):
                    described.update(admin.describe_transactions([tid]))
    finally:
        admin.close()
    found = [
        OpenTransaction(
            transactional_id=tid,
            state=str(d.state.value),
            producer_id=d.producer_id,
            producer_epoch=d.producer_epoch,
            started_ms=d.transaction_start_time_ms,
            timeout_ms=d.transaction_timeout_ms,
            partitions=tuple(sorted(f"{tp.topic}-{tp.partition}" for tp in d.topic_partitions)),
        )
        for tid, d in described.items()
        if str(d.state.value) in OPEN_TRANSACTION_STATES
    ]
    return sorted(found, key=lambda t: (t.started_ms, t.transactional_id))


def abort_transaction(
    bootstrap: str, transactional_id: str, properties: Mapping[str, str] | None = None
) -> None:
    """Abort the open transaction of ``transactional_id`` by fencing its producer.

    A new producer with the same id bumps the epoch, which makes the coordinator
    abort what the old one left open (what Flink's KafkaSink does itself for the
    ids it knows when a job restores). Its records become invisible and the
    partitions' last stable offset moves past them.
    """
    made = producer(bootstrap, properties, transactional_id=transactional_id)
    try:
        made.init_transactions()
    finally:
        made.close(timeout=10)
