"""The platform's one settings object, in one group per job.

``Settings`` holds the shared state (``home``, the warehouse, the object store,
observability, Pathway) and one group per job: ``catalog``, ``tariffs``, ``proposals``,
``om``, ``rag`` and ``ops`` (the Prefect flows). Each value is read from one environment
variable prefixed ``YSH_`` (a ``.env`` file in the working directory is read too), the
same names the platform always read: a group's variables are its prefix plus the field
name (``YSH_RAG_PORT`` is ``settings.rag.port``), and :func:`variables` lists every name
with its place (README's Settings table shows the same mapping). A ``YSH_*`` variable that
names no setting is an error that names the closest valid one.

Defaults live in one place: the domain dataclasses where one exists
(:class:`ysh.proposals.assumptions.Assumptions`, :class:`ysh.om.rules.Thresholds`), here
otherwise. Secrets (passwords, keys) are only ever read from the environment or from
secret files; nothing secret has a default. Folders left unset are resolved against
``home`` once, when the settings are read, so ``settings.catalog.landing_dir`` is always a
path.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .catalog.versions import MAX_SHRINK
from .kit.files import data_path
from .proposals.assumptions import Assumptions


def _env(name: str) -> dict:
    """``json_schema_extra`` of a field whose variable is not its group's prefix + name."""
    return {"env": name}


def _prefix(prefix: str) -> dict:
    """``json_schema_extra`` of a nested group: the prefix of its fields' variables."""
    return {"env_prefix": prefix}


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- shared ----------------------------------------------------------------------


class WarehouseSettings(_Group):
    dsn: SecretStr | None = Field(
        default=None,
        description="libpq DSN/URI of the warehouse. Unset: start or reuse the embedded server.",
    )
    schema_name: str = Field(default="ysh", pattern=r"^[a-z_][a-z0-9_]*$", json_schema_extra=_env("POSTGRES_SCHEMA"))
    embedded_port: int = Field(default=54329, ge=1024, le=65535, json_schema_extra=_env("EMBEDDED_POSTGRES_PORT"))


class ObjectStoreSettings(_Group):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class ObservabilitySettings(_Group):
    log_level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")
    log_json: bool = Field(default=False, description="One JSON object per log line (for log shippers).")
    metrics_port: int | None = Field(default=None, ge=1024, le=65535,
                                    description="Long-running services expose Prometheus /metrics on 127.0.0.1.")


class PathwaySettings(_Group):
    license_key: SecretStr | None = Field(
        default=None,
        description="Pathway license key (secret). When set, CDC followers use Pathway's native "
                    "pw.io.postgres.read instead of ysh.cdc.",
    )
    processes: int = Field(
        default=1, ge=1, le=8,
        description="Pathway worker processes for pipeline runs (free tier: up to 8 workers).",
    )
    monitoring: bool = Field(default=False, description="Pathway's monitoring HTTP server (port 20000 + process id).")


# --- catalog job -------------------------------------------------------------------


class CatalogSettings(_Group):
    source: Literal["fs", "s3"] = "fs"
    landing_dir: Path | None = Field(
        default=None, description="Landing folder of distributor feeds (default: HOME/landing/catalog).")
    s3_bucket: str | None = None
    s3_prefix: str = "catalog/"
    max_shrink: float = Field(
        default=MAX_SHRINK, gt=0, le=1,
        description="Share of a feed's items a new version may lose before it is held (1: never hold a shrink).")
    accept_shrink: bool = Field(
        default=False, description="Take every shrunk new version (as --accept-shrink); broken files are still held.")
    inmetro_dir: Path | None = Field(
        default=None, description="Landing folder of the Inmetro registry tables, CSV/XLSX/PDF "
                                  "(default: HOME/landing/inmetro).")
    inmetro_s3_prefix: str = Field(
        default="inmetro/", description="Prefix of the Inmetro registry tables in YSH_CATALOG_S3_BUCKET (source s3).")
    inmetro_unmatched_warn: float = Field(
        default=0.5, ge=0, le=1,
        description="The Inmetro check warns when more than this share of modules and inverters is in no registry row.")


# --- tariffs job -------------------------------------------------------------------


class AneelSettings(_Group):
    ckan_url: str = Field(default="https://dadosabertos.aneel.gov.br", description="ANEEL open-data portal (CKAN).")
    ckan_timeout_s: float = Field(default=60.0, gt=0)
    ckan_retries: int = Field(default=4, ge=0, le=20)
    ckan_api_key: SecretStr | None = Field(default=None, description="Only for private resources.")
    resources: dict[str, str] | None = Field(
        default=None,
        description="File name → CKAN resource id to download (JSON). Default: tarifas homologadas, "
                    "bandeiras acionamento and componentes tarifárias of the years in ysh.tariffs.ckan.",
    )


class TariffsSettings(_Group):
    landing_dir: Path | None = Field(
        default=None, description="Where CKAN downloads land before tarifas_raw (default: HOME/landing/tariffs).")
    chunk_bytes: int = Field(
        default=4 << 20, ge=1024,
        description="Static runs cut ANEEL files in chunks of about this size, parsed in parallel by Pathway processes.",
    )
    aneel: AneelSettings = Field(default_factory=AneelSettings, json_schema_extra=_prefix("ANEEL_"))


# --- proposals job -----------------------------------------------------------------


class IrradianceSettings(_Group):
    offline: bool = Field(
        default=False, description="Serve irradiance only from the cache (or the modelled year); no network.")
    sources: list[Literal["nasa_power", "pvgis"]] = Field(
        default=["nasa_power", "pvgis"], description="Online sources, tried in this order (JSON list).")
    cache_dir: Path | None = Field(
        default=None, description="On-disk irradiance/generation cache (default: HOME/cache/irradiance).")
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    nasa_power_url: str = Field(default="https://power.larc.nasa.gov/api/temporal/hourly/point",
                                json_schema_extra=_env("NASA_POWER_URL"))
    pvgis_url: str = Field(default="https://re.jrc.ec.europa.eu/api/", json_schema_extra=_env("PVGIS_URL"))


class ProposalsSettings(_Group):
    irradiance: IrradianceSettings = Field(default_factory=IrradianceSettings, json_schema_extra=_prefix("IRRADIANCE_"))
    assumptions: Assumptions = Field(
        default_factory=Assumptions, json_schema_extra=_prefix("PROPOSAL_"),
        description="What the quotes do not carry (documented in docs/proposals.md).")


# --- O&M monitoring ----------------------------------------------------------------


class OmSettings(_Group):
    plants_file: Path | None = Field(default=None, description="PLANTS.json (default: the sample fleet).")
    source: Literal["jsonl", "mqtt", "kafka"] = Field(
        default="jsonl", description="Telemetry source of `ysh om follow`: a JSONL folder, MQTT or Kafka.")
    replay_dir: Path | None = Field(
        default=None, description="Telemetry JSONL folder read by `ysh om run` and followed by `ysh om follow` "
                                  "(default: HOME/landing/om).")
    mqtt_uri: str = Field(
        default="mqtt://127.0.0.1:1883", pattern=r"^[^@]*$",
        description="MQTT broker (mqtt://host:port; mqtts:// for TLS, publishers only: `om follow` refuses it, "
                    "Pathway's reader cannot open TLS, use a loopback bridge); never credentials "
                    "(YSH_OM_MQTT_USERNAME/PASSWORD), so the URI can be printed.")
    mqtt_username: str | None = Field(default=None, description="MQTT user name (with YSH_OM_MQTT_PASSWORD).")
    mqtt_password: SecretStr | None = Field(default=None, description="MQTT password (secret).")
    mqtt_tls_ca: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the broker's certificate, for mqtts:// (publishers "
                                  "and `ysh om publish`; the follower reads TLS brokers through a loopback bridge).")
    mqtt_topic: str = Field(default="ysh/telemetry/#", description="Topic filter: ysh/telemetry/{plant}/{inverter}.")
    mqtt_client_id: str = Field(
        default="ysh-om", description="Stable MQTT client id: the broker keeps its session (QoS 1) across restarts.")
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_topic: str = "inverters_telemetry"
    kafka_group: str = Field(default="ysh-om", description="Kafka consumer group of `ysh om follow`.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="librdkafka security.protocol of the reader and the publisher.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="sasl.mechanism (with SASL_PLAINTEXT / SASL_SSL).")
    kafka_sasl_username: str | None = Field(default=None, description="sasl.username.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="sasl.password (secret).")
    kafka_ssl_ca: Path | None = Field(default=None, description="ssl.ca.location: CA bundle (PEM) of the brokers (SSL / SASL_SSL).")
    kafka_partitions: str | None = Field(
        default=None, pattern=r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$",
        description="Partitions of the telemetry topic this instance owns (\"0,1\" or \"0-3\"); they name its "
                    "state folder, status row and consumer group. Unset: the whole topic (one instance).")
    chunk_bytes: int = Field(
        default=8 << 20, ge=1024,
        description="`ysh om detect` / `ysh om run` read telemetry files in chunks of whole lines of about this "
                    "size, each validated and grouped by window in one Python call.")
    late_cutoff_s: int = Field(
        default=120, ge=0, le=3600,
        description="Late-data cutoff: a 5-minute window is final (and evaluated) when event time passes its end + this.")
    evaluation_lag_s: int = Field(
        default=300, ge=0, le=3600,
        description="How long the rules wait (event time) for an inverter that reported recently but is late for a "
                    "5-minute moment; a moment every inverter reported for is evaluated at once.")
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Rule threshold overrides, JSON (e.g. {\"under_windows\": 4}); fields of ysh.om.rules.Thresholds, "
                    "durations in seconds. See docs/om.md.")
    notify: bool = Field(default=True, description="Slack notice (YSH_SLACK_WEBHOOK_URL) when an O&M alert opens or resolves.")
    notify_min_severity: Literal["info", "warning", "critical"] = Field(
        default="warning", description="Alerts below this severity (clipping is info) are stored, not notified.")
    influx_url: str | None = Field(
        default=None, description="InfluxDB v2 base URL: window stats are also written as line protocol when set.")
    influx_token: SecretStr | None = Field(default=None, description="InfluxDB API token (secret).")
    influx_org: str = "ysh"
    influx_bucket: str = "om"



class RagSettings(_Group):
    docs_dir: Path | None = Field(
        default=None, description="Documents folder indexed by `ysh rag serve` (default: HOME/docs).")
    source: Literal["fs", "s3", "gdrive"] = Field(
        default="fs", description="Where the documents come from: the folder, S3/MinIO (YSH_S3_*), or Google Drive.")
    s3_bucket: str | None = Field(default=None, description="Bucket of the documents (rag_source=s3).")
    s3_prefix: str = Field(default="docs/", description="Key prefix of the documents in the bucket.")
    gdrive_object_id: str | None = Field(default=None, description="Google Drive folder id (rag_source=gdrive).")
    gdrive_credentials_file: Path | None = Field(
        default=None, description="Google service-account JSON (secret file) for rag_source=gdrive.")
    host: str = Field(default="127.0.0.1", description="Address the Hélio API listens on.")
    port: int = Field(default=8765, ge=1, le=65535, description="Port of the Hélio API.")
    url: str | None = Field(
        default=None, description="A running Hélio API (for eval, the Dagster health check); default http://HOST:PORT.")
    api_key: SecretStr | None = Field(
        default=None, description="When set, every API call needs the header X-API-Key with this value (secret).")
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body accepted (413).")
    max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024,
                                    description="Larger documents are reported as errors, not parsed.")
    embedder: str = Field(
        default="minilm",
        description="minilm (the local all-MiniLM-L6-v2 package), st:<sentence-transformers model or path>, "
                    "or openai:<model> (YSH_RAG_OPENAI_*).")
    chunk_tokens: int = Field(default=200, ge=32, le=512, description="Target chunk size in model tokens.")
    chunk_overlap: int = Field(default=40, ge=0, le=256, description="Overlap between chunks of a section.")
    rrf_k: float = Field(default=60.0, gt=0, description="Reciprocal-rank fusion constant of the hybrid index.")
    dense_weight: float = Field(
        default=0.0, ge=0, le=10,
        description="Weight of the dense ranking in the hybrid fusion (BM25's is 1). 0 for the bundled English "
                    "MiniLM embedder: on the seven tuning splits any weight left the final list equal to or "
                    "below BM25 alone (docs/rag.md); raise it, measured with ysh rag eval, for a multilingual "
                    "embedder (YSH_RAG_EMBEDDER).")
    torch_threads: int = Field(
        default=1, ge=1, le=64, description="torch threads in the serving process (more stall queries on 2 cores).")
    embedder_runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="Runtime of minilm / st: models: onnx (ONNX Runtime, the model exported once into "
                    "YSH_RAG_MODEL_CACHE_DIR; same vectors, a question embedded ~3x faster) or torch.")
    model_cache_dir: Path = Field(
        default=Path("~/.cache/ysh/models"),
        description="Where ONNX exports of the embedder are kept (shared by every YSH_HOME of the user).")
    pgvector: bool = Field(
        default=True, description="Keep a durable copy of the chunk vectors in the warehouse (pgvector table rag_chunks).")
    pgvector_reconcile_s: float = Field(
        default=60.0, gt=0, description="After the index delivered its documents and stayed quiet this long, chunks of "
                                        "documents removed while the service was down are deleted from rag_chunks.")
    pinecone_api_key: SecretStr | None = Field(
        default=None, description="Pinecone API key (secret); with the index host, the chunk vectors also go to Pinecone.")
    pinecone_index_host: str | None = Field(
        default=None, description="Host of the Pinecone index (serverless, the embedder's dimension, cosine).")
    live_records: bool = Field(
        default=True, description="Index the catalog products and current B1/B3 tariffs as documents too.")
    records_poll_s: float = Field(default=5.0, gt=0, description="How often the live records are re-read.")
    records_as_of: date | None = Field(
        default=None, description="The day whose tariffs the live records show (default: today in São Paulo); "
                                  "for replaying data that ends before today, as the demo's sample tariffs do.")
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (…/v1) for answers and/or embeddings; unset: extractive.")
    openai_api_key: SecretStr | None = Field(default=None, description="Its API key (secret).")
    chat_model: str = Field(default="gpt-4o-mini", description="Chat model used for answers when configured.")
    llm_timeout_s: float = Field(default=30.0, gt=0, le=600,
                                    description="Timeout of one LLM answer call; on expiry the extractive answer is given.")
    llm_max_concurrent: int = Field(default=4, ge=1, le=64,
                                    description="LLM answer calls at once; more get 503 with Retry-After.")
    answer_log: Path | None = Field(
        default=None, description="Append each /v2/answer's question and the passages it was answered from to this "
                                  "JSONL file (0600; it holds questions and document text): the data "
                                  "scripts/train_answer_ranker.py fits the answer ranker on. Off by default.")


# --- operations: Prefect flows (backup, alerts, legacy migration) --------------------


class BackupSettings(_Group):
    bucket: str | None = Field(default=None, description="S3 bucket of the backups (required by backup).")
    prefix: str = Field(default="backups/", description="Key prefix of the backups in the bucket.")
    keep_daily: int = Field(default=7, ge=1, le=366, description="Newest daily backups kept.")
    keep_weekly: int = Field(default=4, ge=0, le=520, description="Weekly backups kept (the newest of each ISO week).")
    paths: list[Path] | None = Field(
        default=None, description="Folders archived with the database (default: HOME/landing; JSON list).")


class OpsSettings(_Group):
    backup: BackupSettings = Field(default_factory=BackupSettings, json_schema_extra=_prefix("BACKUP_"))
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL for alerts (secret). Unset: notices wait in the outbox.")
    replication_slot_max_wal_mb: int = Field(
        default=1024, ge=1,
        description="The ops check warns when a replication slot holds back more WAL than this (MB).")
    slack_max_attempts: int = Field(
        default=5, ge=1, le=1000,
        description="A notice Slack refuses for good (4xx other than 429) is kept as failed after this many tries.")


# --- the settings --------------------------------------------------------------------


class Settings(BaseSettings):
    """Read with :func:`get_settings`; built directly in tests and by the Dagster
    resource, where keyword arguments may use the variables' flat names
    (``Settings(rag_port=8000, postgres_dsn=...)``) or whole groups."""

    model_config = SettingsConfigDict(
        env_prefix="YSH_", env_file=".env", env_file_encoding="utf-8", extra="forbid"
    )

    home: Path = Field(
        default=Path(".ysh"),
        description="Local state: embedded Postgres data, landing area, Dagster home.",
    )
    dagster_storage: Literal["postgres", "sqlite"] = Field(
        default="postgres",
        description="Where Dagster keeps runs, events and schedules: the warehouse (schema dagster) or SQLite "
                    "files under HOME/dagster.")
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings, json_schema_extra=_prefix("POSTGRES_"))
    s3: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings, json_schema_extra=_prefix("S3_"))
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings, json_schema_extra=_prefix(""))
    pathway: PathwaySettings = Field(default_factory=PathwaySettings, json_schema_extra=_prefix("PATHWAY_"))
    catalog: CatalogSettings = Field(default_factory=CatalogSettings, json_schema_extra=_prefix("CATALOG_"))
    tariffs: TariffsSettings = Field(default_factory=TariffsSettings, json_schema_extra=_prefix("TARIFFS_"))
    proposals: ProposalsSettings = Field(default_factory=ProposalsSettings, json_schema_extra=_prefix(""))
    om: OmSettings = Field(default_factory=OmSettings, json_schema_extra=_prefix("OM_"))
    rag: RagSettings = Field(default_factory=RagSettings, json_schema_extra=_prefix("RAG_"))
    ops: OpsSettings = Field(default_factory=OpsSettings, json_schema_extra=_prefix(""))

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def state_dir(self) -> Path:
        """Pathway persistence of the long-running followers (one folder per pipeline)."""
        return self.home_dir / "state"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.warehouse.dsn is None

    @model_validator(mode="after")
    def _resolve_folders(self) -> Settings:
        """Unset folders get their place under ``home``; every folder is made absolute, so
        a service started from another directory reads the same ones."""
        home = self.home_dir

        def resolved(path: Path | None, default: Path) -> Path:
            return (path or default).expanduser().resolve()

        self.catalog.landing_dir = resolved(self.catalog.landing_dir, home / "landing" / "catalog")
        self.catalog.inmetro_dir = resolved(self.catalog.inmetro_dir, home / "landing" / "inmetro")
        self.tariffs.landing_dir = resolved(self.tariffs.landing_dir, home / "landing" / "tariffs")
        self.proposals.irradiance.cache_dir = resolved(self.proposals.irradiance.cache_dir, home / "cache" / "irradiance")
        self.om.replay_dir = resolved(self.om.replay_dir, home / "landing" / "om")
        self.om.plants_file = resolved(self.om.plants_file, data_path("sample", "om", "plants.json"))
        self.rag.docs_dir = resolved(self.rag.docs_dir, home / "docs")
        if self.rag.answer_log is not None:  # "" (parsed as ".") is off
            log_path = self.rag.answer_log
            self.rag.answer_log = None if str(log_path) in ("", ".") else log_path.expanduser().resolve()
        self.rag.url = self.rag.url or f"http://{self.rag.host}:{self.rag.port}"
        self.ops.backup.paths = [p.expanduser().resolve() for p in (self.ops.backup.paths or [home / "landing"])]
        return self

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        """A ``YSH_*`` variable that names no setting is a typo, not something to ignore
        silently (``YSH_RAG_HOTS`` would leave the API on its default host)."""
        problems = unknown_variables(os.environ)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments first, then the environment, then ``.env``: each read by its
        variable names (:func:`variables`) into the groups."""
        return (
            _Variables(settings_cls, init_settings.init_kwargs, keyword_arguments=True),
            _Variables(settings_cls, _ysh_only(env_settings.env_vars)),
            _Variables(settings_cls, _ysh_only(dotenv_settings.env_vars)),
            file_secret_settings,
        )


# --- variable names ------------------------------------------------------------------


def _fields(model: type) -> dict[str, FieldInfo]:
    """The fields of a group: a pydantic model's, or a domain dataclass's (read from its
    annotations, ``Annotated[float, Field(ge=0)]``)."""
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model, include_extras=True)
        return {f.name: FieldInfo.from_annotation(hints[f.name]) for f in dataclasses.fields(model)}
    return model.model_fields


def _is_group(annotation: Any) -> bool:
    return isinstance(annotation, type) and (issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation))


def _walk(model: type, prefix: str, path: tuple[str, ...]):
    for name, field in _fields(model).items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if _is_group(field.annotation) and "env_prefix" in extra:
            yield from _walk(field.annotation, extra["env_prefix"], (*path, name))
        else:
            yield "YSH_" + str(extra.get("env", prefix + name)).upper(), (*path, name), field


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[tuple[str, ...], FieldInfo]]:
    table = {}
    for variable, path, field in _walk(Settings, "", ()):
        assert variable not in table, f"two settings read {variable}"
        table[variable] = (path, field)
    return table


def variables() -> dict[str, str]:
    """Every ``YSH_*`` variable → where its value goes (``"YSH_RAG_PORT": "rag.port"``)."""
    return {variable: ".".join(path) for variable, (path, _) in _table().items()}


def setting_variables() -> set[str]:
    """Every ``YSH_*`` environment variable a setting reads."""
    return set(_table())


def variable_of(location: tuple) -> str | None:
    """The variable behind a validation error's location (``("rag", "port")`` → ``YSH_RAG_PORT``)."""
    wanted = tuple(str(part) for part in location)
    for variable, (path, _) in _table().items():
        if wanted[: len(path)] == path:
            return variable
    return None


def _ysh_only(env_vars: Mapping[str, str | None]) -> dict[str, str | None]:
    return {key.upper(): value for key, value in env_vars.items() if key.upper().startswith("YSH_")}


def _complex(annotation: Any) -> bool:
    """Whether a variable's text is JSON (a list or a mapping)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_complex(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return typing.get_origin(annotation) in (list, dict, set, tuple) or annotation in (list, dict)


class _Variables(PydanticBaseSettingsSource):
    """Values by variable name (``YSH_RAG_PORT``, or ``rag_port`` as a keyword argument)
    put in their groups; keyword arguments that name a field (``home``, ``rag``) pass as
    they are."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any], keyword_arguments: bool = False):
        super().__init__(settings_cls)
        self.values = values
        self.keyword_arguments = keyword_arguments

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # unused: __call__ reads every value at once

    def __call__(self) -> dict[str, Any]:
        table = _table()
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            variable = key.upper() if key.upper().startswith("YSH_") else f"YSH_{key.upper()}"
            if self.keyword_arguments and key in Settings.model_fields:
                out[key] = value
                continue
            if variable not in table:
                if self.keyword_arguments:
                    out[key] = value  # extra="forbid" names it
                continue  # an unknown YSH_ variable: reported by Settings._no_unknown_variables
            path, field = table[variable]
            if isinstance(value, str) and _complex(field.annotation):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass  # validation then says which variable is not a list/mapping
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        return out

def unknown_variables(environ: Mapping[str, Any]) -> list[str]:
    """One message per ``YSH_*`` name in ``environ`` that is no setting, naming the closest
    valid one when there is a close one."""
    known = setting_variables()
    out = []
    for name in sorted(k for k in environ if k.upper().startswith("YSH_") and k.upper() not in known):
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.75)
        out.append(f"unknown setting {name}" + (f" (did you mean {close[0]}?)" if close else
                                                 " (see the Settings table in README.md)"))
    return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
