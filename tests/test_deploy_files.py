"""The deployment files (deploy/), checked statically: no container runtime here, so none
of them is built, started or applied. They parse; every `ysh …` command they run exists in
the CLI (hidden commands do not count) with the options it passes; every YSH_* variable they
set is a setting; no secret has a literal value; the Dagster storage they configure is the
one `ysh ui` writes."""

from __future__ import annotations

import re
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
import yaml
from pydantic import BaseModel, SecretStr

import ysh.cli
from ysh import dagster_instance
from ysh.settings import Settings, setting_variables, variables

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|LICENSE_KEY|WEBHOOK|_DSN$"
                         r"|CONNECTION_URL$|ROOT_USER$")
REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?])[^}]*)?\}$")  # compose: ${VAR}, ${VAR:?why}
CREDENTIALS_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


# --- what the files hold ---------------------------------------------------------------


@dataclass(frozen=True)
class EnvEntry:
    file: str
    name: str
    value: str | None  # None: from a secret / config reference (valueFrom, envFrom)


def documents(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def env_entries(node, file: str) -> list[EnvEntry]:
    """Every environment variable a YAML document sets: compose `environment` (mapping or
    `K=V` list), Kubernetes `env` (`name` + `value` / `valueFrom`), Helm values' `env`, and
    ConfigMap `data` (loaded with envFrom)."""
    out: list[EnvEntry] = []

    def from_env(value) -> None:
        if isinstance(value, dict):
            out.extend(EnvEntry(file, str(k), None if v is None else str(v)) for k, v in value.items())
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and "=" in item:
                    k, v = item.split("=", 1)
                    out.append(EnvEntry(file, k, v))
                elif isinstance(item, dict) and "name" in item:
                    out.append(EnvEntry(file, item["name"], None if "valueFrom" in item else str(item.get("value", ""))))

    def walk(n) -> None:
        if isinstance(n, dict):
            if n.get("kind") in ("ConfigMap", "Secret"):
                for key in ("data", "stringData"):
                    from_env(n.get(key) or {})
            for key, value in n.items():
                if key in ("env", "environment"):
                    from_env(value)
                else:
                    walk(value)
        elif isinstance(n, list):
            for item in n:
                walk(item)

    walk(node)
    return out


def dockerfile_env(path: Path) -> list[EnvEntry]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for token in shlex.split(line.strip()[4:]):
                name, _, value = token.partition("=")
                out.append(EnvEntry(path.name, name, value))
    return out


def dotenv_entries(path: Path) -> list[EnvEntry]:
    return [EnvEntry(path.name, *line.split("=", 1)) for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def all_env() -> list[EnvEntry]:
    entries = [e for path in YAML_FILES for doc in documents(path) for e in env_entries(doc, path.name)]
    entries += dockerfile_env(DEPLOY / "Dockerfile")
    entries += dotenv_entries(DEPLOY / ".env.example")
    return entries


def commands(node) -> list[list[str]]:
    """Every command line a YAML document runs: a container's `command` + `args`
    (Kubernetes) or `entrypoint` + `command` (compose), and any list of strings that starts
    with `ysh`."""
    out: list[list[str]] = []

    def argv(value) -> list[str]:
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    def walk(n) -> None:
        if isinstance(n, dict):
            runs = "command" in n or "args" in n
            if runs:
                line = argv(n.get("entrypoint")) + argv(n.get("command")) + argv(n.get("args"))
                if line:
                    out.append(line)
            for key, value in n.items():
                if not (runs and key in ("entrypoint", "command", "args")):
                    walk(value)
        elif isinstance(n, list):
            if n and all(isinstance(v, str) for v in n) and n[0] == "ysh":
                out.append(list(n))
            for item in n:
                walk(item)

    walk(node)
    return out


def dockerfile_commands(path: Path) -> list[list[str]]:
    import json

    return [json.loads(m.group(1)) for m in re.finditer(r"^(?:CMD|ENTRYPOINT)\s+(\[.*\])\s*$", path.read_text(), re.M)]


def ysh_invocations(lines: list[list[str]]) -> list[list[str]]:
    """The `ysh …` part of each command line (after tini or a wrapper)."""
    return [line[line.index("ysh"):] for line in lines if "ysh" in line]


# --- what is valid ---------------------------------------------------------------------


def cli_problem(argv: list[str]) -> str | None:
    """Why ``argv`` (``["ysh", "om", "follow", "--source", "kafka"]``) is not a command of
    the CLI, or None. Hidden commands are not valid; options must be the command's."""
    command = typer.main.get_command(ysh.cli.app)
    words = argv[1:]
    path = []
    while words and not words[0].startswith("-") and hasattr(command, "commands"):
        sub = command.commands.get(words[0])
        if sub is None:
            return f"`ysh {' '.join(path + [words[0]])}` is no command"
        if sub.hidden:
            return f"`ysh {' '.join(path + [words[0]])}` is hidden"
        command, path, words = sub, path + [words[0]], words[1:]
    if hasattr(command, "commands"):
        return f"`ysh {' '.join(path)}` is a group, not a command" if words[:1] != ["--help"] else None
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    for word in words:
        if word.startswith("-") and word.split("=", 1)[0] not in options:
            return f"`ysh {' '.join(path)}` has no option {word}"
    return None


def _secret_annotation(annotation) -> bool:
    if annotation is SecretStr:
        return True
    return any(_secret_annotation(arg) for arg in typing.get_args(annotation))


def secret_settings() -> set[str]:
    """The YSH_* variables whose setting is a SecretStr."""
    out = set()
    for variable, place in variables().items():
        model, field = Settings, None
        for part in place.split("."):
            field = model.model_fields[part] if isinstance(model, type) and issubclass(model, BaseModel) else None
            if field is None:
                break
            model = field.annotation
        if field is not None and _secret_annotation(field.annotation):
            out.add(variable)
    return out


def is_secret(name: str) -> bool:
    return not name.endswith("_FILE") and (bool(SECRET_NAME.search(name)) or name in secret_settings())


def secret_problem(entry: EnvEntry) -> str | None:
    """A literal where a secret must come from a secret store or the environment."""
    value = entry.value
    if value and CREDENTIALS_IN_URL.search(value):
        return f"{entry.file}: {entry.name} holds credentials in a URL"
    if not is_secret(entry.name) or value is None or REFERENCE.match(value):
        return None
    if value == "" and entry.file.endswith(".example"):
        return None  # a template's blank
    return f"{entry.file}: the secret {entry.name} has a literal value"


# --- the checkers catch what they are for ------------------------------------------------


def test_the_cli_check_refuses_unknown_hidden_and_misspelled_commands():
    assert cli_problem(["ysh", "catalog", "follow"]) is None
    assert cli_problem(["ysh", "om", "follow", "--source", "kafka"]) is None
    assert "no command" in cli_problem(["ysh", "catalog", "folow"])
    assert "hidden" in cli_problem(["ysh", "catalog", "watch"])
    assert "no option --sauce" in cli_problem(["ysh", "om", "follow", "--sauce", "kafka"])
    assert "group" in cli_problem(["ysh", "catalog"])


def test_the_secret_check_refuses_literals_and_accepts_references():
    assert secret_settings() >= {"YSH_POSTGRES_DSN", "YSH_RAG_API_KEY", "YSH_S3_SECRET_ACCESS_KEY"}
    assert secret_problem(EnvEntry("compose.yaml", "YSH_POSTGRES_DSN", "host=db password=hunter2"))
    assert secret_problem(EnvEntry("compose.yaml", "MINIO_ROOT_PASSWORD", "minio123"))
    assert secret_problem(EnvEntry("config.yaml", "YSH_RAG_URL", "http://admin:pw@helio:8000"))
    assert secret_problem(EnvEntry("compose.yaml", "YSH_POSTGRES_DSN", "${YSH_POSTGRES_DSN:?set it}")) is None
    assert secret_problem(EnvEntry("streaming.yaml", "YSH_RAG_API_KEY", None)) is None  # valueFrom
    assert secret_problem(EnvEntry("compose.yaml", "YSH_RAG_PORT", "8000")) is None


def test_the_env_reader_sees_compose_kubernetes_and_configmaps():
    doc = yaml.safe_load("""
services:
  a: {environment: {YSH_HOME: /x}}
  b: {environment: ["YSH_RAG_PORT=1"]}
containers:
  - env: [{name: YSH_POSTGRES_DSN, valueFrom: {secretKeyRef: {name: s, key: k}}}]
""")
    assert {(e.name, e.value) for e in env_entries(doc, "f")} == {
        ("YSH_HOME", "/x"), ("YSH_RAG_PORT", "1"), ("YSH_POSTGRES_DSN", None)}
    config_map = {"kind": "ConfigMap", "data": {"YSH_LOG_JSON": "true"}}
    assert [e.name for e in env_entries(config_map, "f")] == ["YSH_LOG_JSON"]


# --- the files -----------------------------------------------------------------------------


def test_the_deployment_files_are_there():
    assert (DEPLOY / "Dockerfile").is_file() and (DEPLOY / "compose.yaml").is_file()
    assert (DEPLOY / "helm" / "dagster-values.yaml").is_file()
    assert list((DEPLOY / "k8s").glob("*.yaml"))


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path):
    assert documents(path)


def test_every_ysh_command_exists_in_the_cli():
    lines = [line for path in YAML_FILES for doc in documents(path) for line in commands(doc)]
    lines += dockerfile_commands(DEPLOY / "Dockerfile")
    invocations = ysh_invocations(lines)
    assert len(invocations) >= 10
    problems = [problem for argv in invocations if (problem := cli_problem(argv))]
    assert not problems


def test_every_ysh_variable_is_a_setting():
    known = setting_variables()
    names = {e.name for e in all_env()}
    assert {"YSH_POSTGRES_DSN", "YSH_OM_KAFKA_PARTITIONS", "YSH_RAG_API_KEY"} <= names  # the reader sees them
    unknown = sorted({f"{e.file}: {e.name}" for e in all_env() if e.name.startswith("YSH_") and e.name not in known})
    assert not unknown


def test_no_secret_has_a_literal_value():
    entries = all_env()
    assert any(is_secret(e.name) for e in entries)  # the files do name secrets
    problems = [problem for e in entries if (problem := secret_problem(e))]
    assert not problems


def test_kubernetes_objects_carry_no_secret():
    kinds = [d.get("kind") for p in (DEPLOY / "k8s").glob("*.yaml") for d in documents(p)]
    assert "Secret" not in kinds  # made out of band (docs/operations.md, "Deployment")


# --- the image ------------------------------------------------------------------------------


def test_the_image_is_multi_stage_cpu_torch_and_not_root():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert len(stages) >= 2 and "COPY --from=" in text
    assert re.search(r"pip install --index-url https://download\.pytorch\.org/whl/cpu \"torch==[\d.]+\"", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # the same torch as pyproject.toml
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    assert re.search(r'"torch==([\d.]+)"', text).group(1) == re.search(r'"torch==([\d.]+)"', pyproject).group(1)


# --- Phase 1: compose -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return documents(DEPLOY / "compose.yaml")[0]


def ysh_services(compose) -> dict[str, list[str]]:
    return {name: ysh_invocations([line])[0] for name, service in compose["services"].items()
            for line in commands(service) if "ysh" in line}


def test_compose_runs_one_process_per_streaming_service_with_its_state_volume(compose):
    services = ysh_services(compose)
    for argv in (["ysh", "catalog", "follow"], ["ysh", "tariffs", "follow"], ["ysh", "proposals", "follow"],
                 ["ysh", "om", "follow"], ["ysh", "rag", "serve"]):
        running = [name for name, line in services.items() if line[: len(argv)] == argv]
        assert running, f"no service runs {' '.join(argv)}"
        for name in running:
            volumes = compose["services"][name].get("volumes", [])
            assert any(str(v).endswith(":/var/lib/ysh/state") for v in volumes), name


def test_compose_has_the_phase_1_servers(compose):
    images = {name: s.get("image", "") for name, s in compose["services"].items()}
    assert "pgvector" in images["postgres"]
    assert "mosquitto" in images["mosquitto"]
    assert "redpanda" in images["kafka"]  # a Kafka-protocol broker
    assert "minio" in images["minio"]
    assert "prefect" in images["prefect-server"]
    lines = {name: " ".join(line) for name, s in compose["services"].items() for line in commands(s)}
    assert lines["dagster-webserver"].startswith("dagster-webserver")
    assert lines["dagster-daemon"].startswith("dagster-daemon run")
    assert "-m ysh.definitions" in lines["dagster-code"]


def test_compose_dagster_storage_is_the_one_ysh_ui_writes():
    """deploy/dagster/dagster.yaml and ysh.dagster_instance name the same storage (server
    aside), so the containers and `ysh ui` keep Dagster's runs in the same place."""
    mounted = documents(DEPLOY / "dagster" / "dagster.yaml")[0]
    written = dagster_instance.instance_config("host=postgres port=5432 user=ysh dbname=ysh password=x")
    assert mounted["storage"] == written["storage"]


def test_the_compose_dagster_yaml_is_a_valid_instance_config(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster" / "dagster.yaml").read_text())
    monkeypatch.setenv(dagster_instance.PASSWORD_VARIABLE, "not-a-password")
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]


# --- Phase 3: Kubernetes and the Dagster chart ----------------------------------------------


@pytest.fixture(scope="module")
def k8s():
    return [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in documents(p)]


def test_each_streaming_service_is_a_statefulset_with_a_volume_for_pathway_state(k8s):
    sets = {d["metadata"]["name"]: d for d in k8s if d.get("kind") == "StatefulSet"}
    running = {}
    for name, sts in sets.items():
        container = sts["spec"]["template"]["spec"]["containers"][0]
        argv = ysh_invocations(commands(container))[0]
        running[name] = argv
        claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert any(mounts.get(claim) == "/var/lib/ysh/state" for claim in claims), name
    for argv in (["ysh", "catalog", "follow"], ["ysh", "tariffs", "follow"], ["ysh", "proposals", "follow"],
                 ["ysh", "rag", "serve"]):
        assert sum(line[: len(argv)] == argv for line in running.values()) == 1, argv


def test_the_om_consumers_split_the_kafka_partitions(k8s):
    owned = []
    for d in k8s:
        if d.get("kind") != "StatefulSet":
            continue
        container = d["spec"]["template"]["spec"]["containers"][0]
        if ysh_invocations(commands(container))[0][:3] != ["ysh", "om", "follow"]:
            continue
        env = {e.name: e.value for e in env_entries(container, "k8s")}
        owned.append({int(p) for p in env["YSH_OM_KAFKA_PARTITIONS"].split(",")})
    assert len(owned) >= 2
    assert sum(len(p) for p in owned) == len(set().union(*owned))  # disjoint
    assert set().union(*owned) == set(range(len(set().union(*owned))))  # together: partitions 0..n-1


def test_the_dagster_chart_serves_the_code_location_and_stores_in_postgres():
    values = documents(DEPLOY / "helm" / "dagster-values.yaml")[0]
    deployments = values["dagster-user-deployments"]["deployments"]
    assert [d["dagsterApiGrpcArgs"] for d in deployments] == [["-m", "ysh.definitions"]]
    assert values["postgresql"]["postgresqlParams"]["options"] == f"-csearch_path={dagster_instance.SCHEMA}"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]
