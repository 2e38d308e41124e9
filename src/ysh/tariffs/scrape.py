"""Downloading ANEEL's tariff datasets into the tariffs landing folder (CKAN DataStore).

Each resource becomes one CSV named like ANEEL's own download, so the landing step
(:mod:`ysh.tariffs.landing`) cannot tell a scraped file from a hand-downloaded one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..settings import Settings
from .ckan import ANEEL_FIO_B_RESOURCES_BY_YEAR, ANEEL_RESOURCES, CkanClient, DownloadResult, download_resource


def default_resources() -> dict[str, str]:
    """File name → resource id: tarifas homologadas, bandeiras, and one componentes
    tarifárias file per year ANEEL publishes (Fio B)."""
    files = {"tarifas-homologadas-distribuidoras-energia-eletrica.csv": ANEEL_RESOURCES["tariffs"],
             "bandeira-tarifaria-acionamento.csv": ANEEL_RESOURCES["flags"]}
    files.update({f"componentes-tarifarias-{year}.csv": rid for year, rid in ANEEL_FIO_B_RESOURCES_BY_YEAR.items()})
    return files


def scrape(settings: Settings, dest: Path | None = None, *,
           progress: Callable[[str, int, int], None] | None = None) -> list[DownloadResult]:
    """Download every configured resource into ``dest`` (default: the tariffs landing
    folder). A failed download raises :class:`ysh.tariffs.ckan.CkanError` and leaves the
    previous file of that resource in place."""
    dest = dest or settings.tariffs.landing_dir
    dest.mkdir(parents=True, exist_ok=True)
    resources = settings.tariffs.aneel.resources or default_resources()
    api_key = settings.tariffs.aneel.ckan_api_key.get_secret_value() if settings.tariffs.aneel.ckan_api_key else None
    results = []
    with CkanClient(settings.tariffs.aneel.ckan_url, timeout_s=settings.tariffs.aneel.ckan_timeout_s,
                    retries=settings.tariffs.aneel.ckan_retries, api_key=api_key) as client:
        for name, resource_id in resources.items():
            report = (lambda done, total, name=name: progress(name, done, total)) if progress else None
            results.append(download_resource(client, resource_id, dest / name, progress=report))
    return results
