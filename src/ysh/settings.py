"""The platform's one settings object.

Every backend is picked here, from environment variables prefixed ``YSH_`` (a ``.env``
file in the working directory is read too). Secrets (passwords, keys) are only ever
read from the environment or from secret files; nothing secret has a default.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .kit.files import data_path


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YSH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- local state -------------------------------------------------------------
    home: Path = Field(
        default=Path(".ysh"),
        description="Local state: embedded Postgres data, landing area, Dagster home.",
    )

    # --- warehouse ---------------------------------------------------------------
    postgres_dsn: SecretStr | None = Field(
        default=None,
        description="libpq DSN/URI of the warehouse. Unset: start or reuse the embedded server.",
    )
    postgres_schema: str = Field(default="ysh", pattern=r"^[a-z_][a-z0-9_]*$")
    embedded_postgres_port: int = Field(default=54329, ge=1024, le=65535)

    # --- catalog job -------------------------------------------------------------
    catalog_source: Literal["fs", "s3"] = "fs"
    catalog_landing_dir: Path | None = Field(
        default=None, description="Landing folder of distributor feeds (default: HOME/landing/catalog)."
    )
    catalog_s3_bucket: str | None = None
    catalog_s3_prefix: str = "catalog/"

    # --- tariffs job -------------------------------------------------------------
    tariffs_landing_dir: Path | None = Field(
        default=None, description="Where CKAN downloads land before tarifas_raw (default: HOME/landing/tariffs)."
    )
    tariffs_chunk_bytes: int = Field(
        default=4 << 20, ge=1024,
        description="Static runs cut ANEEL files in chunks of about this size, parsed in parallel by Pathway processes.",
    )
    aneel_ckan_url: str = Field(default="https://dadosabertos.aneel.gov.br",
                                description="ANEEL open-data portal (CKAN).")
    aneel_ckan_timeout_s: float = Field(default=60.0, gt=0)
    aneel_ckan_retries: int = Field(default=4, ge=0, le=20)
    aneel_ckan_api_key: SecretStr | None = Field(default=None, description="Only for private resources.")
    aneel_resources: dict[str, str] | None = Field(
        default=None,
        description="File name → CKAN resource id to download (JSON). Default: tarifas homologadas, "
                    "bandeiras acionamento and componentes tarifárias of the years in ysh.tariffs.ckan.",
    )

    # --- proposals job: irradiance ------------------------------------------------
    irradiance_offline: bool = Field(
        default=False, description="Serve irradiance only from the cache (or the modelled year); no network.",
    )
    irradiance_sources: list[Literal["nasa_power", "pvgis"]] = Field(
        default=["nasa_power", "pvgis"], description="Online sources, tried in this order (JSON list).",
    )
    irradiance_cache_dir: Path | None = Field(
        default=None, description="On-disk irradiance/generation cache (default: HOME/cache/irradiance).",
    )
    irradiance_timeout_s: float = Field(default=30.0, gt=0)
    irradiance_retries: int = Field(default=2, ge=0, le=10)
    nasa_power_url: str = "https://power.larc.nasa.gov/api/temporal/hourly/point"
    pvgis_url: str = "https://re.jrc.ec.europa.eu/api/"

    # --- proposals job: assumptions the quotes do not carry (documented in docs/proposals.md)
    proposal_simultaneity_b1: float = Field(default=0.30, ge=0, le=1,
                                            description="Share of generation consumed on the spot, B1.")
    proposal_simultaneity_b3: float = Field(default=0.50, ge=0, le=1,
                                            description="Share of generation consumed on the spot, B3.")
    proposal_pis_cofins_pct: float = Field(default=6.0, ge=0, lt=100)
    proposal_tariff_escalation_pct: float = Field(default=5.0, ge=-50, le=100)
    proposal_discount_rate_pct: float = Field(default=10.0, gt=-100, le=100)
    proposal_om_pct_capex: float = Field(default=1.0, ge=0, le=100)
    proposal_inverter_replacement_year: int = Field(default=12, ge=1, le=50)
    proposal_inverter_replacement_pct: float = Field(default=15.0, ge=0, le=100)
    proposal_installation_brl_per_kwp: float = Field(
        default=1200.0, ge=0, description="Labour, structure and cabling on top of the quoted equipment.")
    proposal_losses_pct: float = Field(default=14.0, ge=0, lt=100, description="PVWatts system losses.")

    # --- operations: Prefect flows (backup, alerts, legacy migration) -----------------
    backup_bucket: str | None = Field(default=None, description="S3 bucket of the backups (required by backup).")
    backup_prefix: str = Field(default="backups/", description="Key prefix of the backups in the bucket.")
    backup_keep_daily: int = Field(default=7, ge=1, le=366, description="Newest daily backups kept.")
    backup_keep_weekly: int = Field(default=4, ge=0, le=520, description="Weekly backups kept (the newest of each ISO week).")
    backup_paths: list[Path] | None = Field(
        default=None, description="Folders archived with the database (default: HOME/landing; JSON list).")
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL for alerts (secret). Unset: alerts are only logged.")

    # --- O&M monitoring (ysh om run / detect) --------------------------------------
    om_plants_file: Path | None = Field(default=None, description="PLANTS.json (default: the sample fleet).")
    om_source: Literal["jsonl", "mqtt", "kafka"] = Field(
        default="jsonl", description="Telemetry source of `ysh om run`: a JSONL folder, MQTT or Kafka.")
    om_replay_dir: Path | None = Field(
        default=None, description="Folder of telemetry JSONL files followed by `ysh om run` (default: HOME/landing/om).")
    om_mqtt_uri: str = Field(default="mqtt://127.0.0.1:1883", description="MQTT broker (mqtt://host:port).")
    om_mqtt_topic: str = Field(default="ysh/telemetry/#", description="Topic filter: ysh/telemetry/{plant}/{inverter}.")
    om_mqtt_client_id: str = Field(
        default="ysh-om", description="Stable MQTT client id: the broker keeps its session (QoS 1) across restarts.")
    om_kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    om_kafka_topic: str = "inverters_telemetry"
    om_kafka_group: str = Field(default="ysh-om", description="Kafka consumer group of `ysh om run`.")
    om_late_cutoff_s: int = Field(
        default=120, ge=0, le=3600,
        description="Late-data cutoff: a 5-minute window is final (and evaluated) when event time passes its end + this.")
    om_evaluation_lag_s: int = Field(
        default=300, ge=0, le=3600,
        description="How long the rules wait (event time) for an inverter that reported recently but is late for a "
                    "5-minute moment; a moment every inverter reported for is evaluated at once.")
    om_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Rule threshold overrides, JSON (e.g. {\"under_windows\": 4}); fields of ysh.om.rules.Thresholds, "
                    "durations in seconds. See docs/om.md.")
    om_notify: bool = Field(default=True, description="Slack notice (YSH_SLACK_WEBHOOK_URL) when an O&M alert opens or resolves.")
    om_notify_min_severity: Literal["info", "warning", "critical"] = Field(
        default="warning", description="Alerts below this severity (clipping is info) are stored, not notified.")
    om_influx_url: str | None = Field(
        default=None, description="InfluxDB v2 base URL: window stats are also written as line protocol when set.")
    om_influx_token: SecretStr | None = Field(default=None, description="InfluxDB API token (secret).")
    om_influx_org: str = "ysh"
    om_influx_bucket: str = "om"

    # --- RAG for Hélio (ysh rag serve / eval) ------------------------------------
    rag_docs_dir: Path | None = Field(
        default=None, description="Documents folder indexed by `ysh rag serve` (default: HOME/docs).")
    rag_source: Literal["fs", "s3", "gdrive"] = Field(
        default="fs", description="Where the documents come from: the folder, S3/MinIO (YSH_S3_*), or Google Drive.")
    rag_s3_bucket: str | None = Field(default=None, description="Bucket of the documents (rag_source=s3).")
    rag_s3_prefix: str = Field(default="docs/", description="Key prefix of the documents in the bucket.")
    rag_gdrive_object_id: str | None = Field(default=None, description="Google Drive folder id (rag_source=gdrive).")
    rag_gdrive_credentials_file: Path | None = Field(
        default=None, description="Google service-account JSON (secret file) for rag_source=gdrive.")
    rag_host: str = Field(default="127.0.0.1", description="Address the Hélio API listens on.")
    rag_port: int = Field(default=8765, ge=1, le=65535, description="Port of the Hélio API.")
    rag_url: str | None = Field(
        default=None, description="A running Hélio API (for eval, the Dagster health check); default http://HOST:PORT.")
    rag_api_key: SecretStr | None = Field(
        default=None, description="When set, every API call needs the header X-API-Key with this value (secret).")
    rag_max_request_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body accepted (413).")
    rag_max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024,
                                    description="Larger documents are reported as errors, not parsed.")
    rag_embedder: str = Field(
        default="minilm",
        description="minilm (the local all-MiniLM-L6-v2 package), st:<sentence-transformers model or path>, "
                    "or openai:<model> (YSH_RAG_OPENAI_*).")
    rag_chunk_tokens: int = Field(default=200, ge=32, le=512, description="Target chunk size in model tokens.")
    rag_chunk_overlap: int = Field(default=40, ge=0, le=256, description="Overlap between chunks of a section.")
    rag_rrf_k: float = Field(default=60.0, gt=0, description="Reciprocal-rank fusion constant of the hybrid index.")
    rag_dense_weight: float = Field(
        default=0.025, ge=0, le=10,
        description="Weight of the dense ranking in the hybrid fusion (BM25's is 1). Chosen on the sample "
                    "question split for the default English MiniLM embedder, where a larger weight lowers "
                    "hit@1 below BM25 alone (docs/rag.md); re-tune it for a multilingual embedder.")
    rag_torch_threads: int = Field(
        default=1, ge=1, le=64, description="torch threads in the serving process (more stall queries on 2 cores).")
    rag_pgvector: bool = Field(
        default=True, description="Keep a durable copy of the chunk vectors in the warehouse (pgvector table rag_chunks).")
    rag_pgvector_reconcile_s: float = Field(
        default=60.0, gt=0, description="After the index delivered its documents and stayed quiet this long, chunks of "
                                        "documents removed while the service was down are deleted from rag_chunks.")
    rag_pinecone_api_key: SecretStr | None = Field(
        default=None, description="Pinecone API key (secret); with the index host, the chunk vectors also go to Pinecone.")
    rag_pinecone_index_host: str | None = Field(
        default=None, description="Host of the Pinecone index (serverless, the embedder's dimension, cosine).")
    rag_live_records: bool = Field(
        default=True, description="Index the catalog products and current B1/B3 tariffs as documents too.")
    rag_records_poll_s: float = Field(default=5.0, gt=0, description="How often the live records are re-read.")
    rag_records_as_of: date | None = Field(
        default=None, description="The day whose tariffs the live records show (default: today in São Paulo); "
                                  "for replaying data that ends before today, as the demo's sample tariffs do.")
    rag_openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (…/v1) for answers and/or embeddings; unset: extractive.")
    rag_openai_api_key: SecretStr | None = Field(default=None, description="Its API key (secret).")
    rag_chat_model: str = Field(default="gpt-4o-mini", description="Chat model used for answers when configured.")
    rag_llm_timeout_s: float = Field(default=30.0, gt=0, le=600,
                                     description="Timeout of one LLM answer call; on expiry the extractive answer is given.")
    rag_llm_max_concurrent: int = Field(default=4, ge=1, le=64,
                                        description="LLM answer calls at once; more get 503 with Retry-After.")

    # --- object store (S3 / MinIO) -----------------------------------------------
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None

    # --- observability -----------------------------------------------------------
    log_level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")
    log_json: bool = Field(default=False, description="One JSON object per log line (for log shippers).")
    metrics_port: int | None = Field(default=None, ge=1024, le=65535,
                                     description="Long-running services expose Prometheus /metrics on 127.0.0.1.")
    pathway_monitoring: bool = Field(default=False,
                                     description="Pathway's monitoring HTTP server (port 20000 + process id).")

    # --- Pathway -----------------------------------------------------------------
    pathway_license_key: SecretStr | None = Field(
        default=None,
        description="Pathway license key (secret). When set, CDC followers use Pathway's native "
                    "pw.io.postgres.read instead of ysh.cdc.",
    )
    pathway_processes: int = Field(
        default=1, ge=1, le=8,
        description="Pathway worker processes for pipeline runs (free tier: up to 8 workers).",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def landing_dir(self) -> Path:
        return (self.catalog_landing_dir or self.home_dir / "landing" / "catalog").expanduser().resolve()

    @property
    def tariffs_landing(self) -> Path:
        return (self.tariffs_landing_dir or self.home_dir / "landing" / "tariffs").expanduser().resolve()

    @property
    def irradiance_cache(self) -> Path:
        return (self.irradiance_cache_dir or self.home_dir / "cache" / "irradiance").expanduser().resolve()

    @property
    def om_replay_folder(self) -> Path:
        return (self.om_replay_dir or self.home_dir / "landing" / "om").expanduser().resolve()

    @property
    def om_plants_path(self) -> Path:
        return (self.om_plants_file or data_path("sample", "om", "plants.json")).expanduser().resolve()

    @property
    def rag_docs_folder(self) -> Path:
        return (self.rag_docs_dir or self.home_dir / "docs").expanduser().resolve()

    @property
    def rag_api_url(self) -> str:
        return self.rag_url or f"http://{self.rag_host}:{self.rag_port}"

    @property
    def backup_folders(self) -> list[Path]:
        return [p.expanduser().resolve() for p in (self.backup_paths or [self.home_dir / "landing"])]

    @property
    def state_dir(self) -> Path:
        """Pathway persistence of the long-running followers (one folder per pipeline)."""
        return self.home_dir / "state"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.postgres_dsn is None

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        """A ``YSH_*`` variable that names no setting is a typo, not something to ignore
        silently (``YSH_RAG_HOTS`` would leave the API on its default host)."""
        import os

        problems = unknown_variables(os.environ)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def setting_variables() -> set[str]:
    """Every ``YSH_*`` environment variable a setting reads."""
    return {f"YSH_{name.upper()}" for name in Settings.model_fields}


def unknown_variables(environ) -> list[str]:
    """One message per ``YSH_*`` name in ``environ`` that is no setting, naming the closest
    valid one when there is a close one."""
    import difflib

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
