"""Dagster resources shared by every job's assets (thin: they read the settings object)."""


import dagster as dg

from . import db
from .settings import Settings


class WarehouseResource(dg.ConfigurableResource):
    """The platform's PostgreSQL. Empty fields fall back to the settings (``YSH_*``):
    ``YSH_POSTGRES_DSN`` or, unset, the embedded server; migrations are applied on first use."""

    dsn: str | None = None
    schema_name: str | None = None

    def settings(self) -> Settings:
        overrides = {}
        if self.dsn:
            overrides["postgres_dsn"] = self.dsn
        if self.schema_name:
            overrides["postgres_schema"] = self.schema_name
        return Settings(**overrides)

    def get_dsn(self) -> str:
        return db.prepare_warehouse(self.settings())

    @property
    def schema(self) -> str:
        return self.settings().postgres_schema

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        with db.connect(self.get_dsn(), self.schema) as conn:
            return conn.execute(statement, params).fetchall()
