"""Dagster resources shared by every job's assets (thin: they read the settings object).

* :class:`SettingsResource` — the platform settings (``YSH_*``, ``.env``) an asset, check
  or sensor reads its paths and limits from; assets never build ``Settings()`` themselves,
  so a test (or a deployment) hands them other settings through the resource.
* :class:`WarehouseResource` — the platform's PostgreSQL: ``dsn`` (in the definitions,
  ``dg.EnvVar("YSH_POSTGRES_DSN")`` when that variable is set, else the embedded server)
  and ``schema_name``; the server is started and migrated once per process, not on every
  query.
"""

from __future__ import annotations

import threading

import dagster as dg
from pydantic import Field

from . import db
from .settings import Settings

#: (dsn or "", schema) → the prepared DSN: migrations run once per process
_PREPARED: dict[tuple[str, str], str] = {}
_PREPARED_LOCK = threading.Lock()


class SettingsResource(dg.ConfigurableResource):
    """The platform settings. ``env_file``: a ``.env`` file to read besides the
    environment (default: ``.env`` in the working directory, as the CLI)."""

    env_file: str | None = None

    def get(self) -> Settings:
        return Settings(_env_file=self.env_file) if self.env_file else Settings()


class WarehouseResource(dg.ConfigurableResource):
    """The platform's PostgreSQL. Empty fields fall back to the settings (``YSH_*``):
    ``YSH_POSTGRES_DSN`` or, unset, the embedded server; migrations are applied on first use
    in a process."""

    #: holds a password: out of the repr; the definitions set it only as
    #: ``dg.EnvVar("YSH_POSTGRES_DSN")`` (read at run time, never stored in run config)
    dsn: str | None = Field(default=None, repr=False)
    schema_name: str | None = None

    def settings(self) -> Settings:
        overrides = {}
        if self.dsn:
            overrides["postgres_dsn"] = self.dsn
        if self.schema_name:
            overrides["postgres_schema"] = self.schema_name
        return Settings(**overrides)

    def get_dsn(self) -> str:
        settings = self.settings()
        key = (self.dsn or "", settings.warehouse.schema_name)
        with _PREPARED_LOCK:
            if key not in _PREPARED:
                _PREPARED[key] = db.prepare_warehouse(settings)
            return _PREPARED[key]

    @property
    def schema(self) -> str:
        return self.schema_name or self.settings().warehouse.schema_name

    def warehouse(self) -> db.Warehouse:
        return db.Warehouse(self.get_dsn(), self.schema)

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        with db.connect(self.get_dsn(), self.schema) as conn:
            return conn.execute(statement, params).fetchall()
