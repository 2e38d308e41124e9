"""Downloading ANEEL's tariff datasets from its open-data CKAN API (``datastore_search``).

ANEEL publishes the three datasets the tariffs job reads (see :mod:`ysh.tariffs.aneel`)
on a CKAN portal, https://dadosabertos.aneel.gov.br, whose DataStore answers
``GET /api/3/action/datastore_search?resource_id=…&offset=…&limit=…&sort=_id`` with::

    {"help": "…", "success": true,
     "result": {"resource_id": "…", "fields": [{"id": "_id", "type": "int"}, {"id": "VlrTE", "type": "text"}, …],
                "records": [{"_id": 1, "VlrTE": "280,51", …}, …],
                "_links": {"start": "…", "next": "…"}, "total": 324609, "limit": 10000, "offset": 0}}

and, on failure, ``{"success": false, "error": {"__type": "Not Found Error", "message": "…"}}``
(HTTP 404 for an unknown resource, 409 for a validation error, 403 for a private one).

Paging
    :meth:`CkanClient.iter_records` asks for ``page_size`` rows (default 10 000; CKAN caps
    ``limit`` at ``ckan.datastore.search.rows_max``, 32 000 by default, *silently*), sorted
    by ``_id`` so offsets are stable, and advances ``offset`` by the number of records the
    page really held — so a server-side cap never skips rows. It stops when
    ``offset >= total`` or a page comes back empty (an early empty page is logged; the
    strict :func:`download_resource` turns it into an error).

Replaced resources
    ANEEL replaces a resource's table when it republishes the dataset. If ``total`` (or the
    field list) changes between pages, the rows already read belong to the old table:
    :class:`CkanError` is raised rather than silently mixing two versions. The caller
    restarts the download (the job's next run does so by itself); nothing half-written is
    left behind, since :func:`download_resource` writes atomically.

Values
    ANEEL's DataStore tables type every column ``text`` (values as in the CSVs: decimal
    comma, zero written ``,00``, ISO dates). Records are nevertheless converted to that
    text form whatever the column type, so a table re-typed by the portal still parses:
    ``None`` → ``""``; a ``str`` is kept (but a ``timestamp``/``date`` column's
    ``"2024-01-01T00:00:00"`` becomes ``"2024-01-01"``); an ``int`` → ``str(int)``, except in
    a ``numeric``/``float`` column; numbers of a ``numeric``/``float`` column, and any
    non-integer number, → decimal comma with at least two decimals (``123.45`` →
    ``"123,45"``, ``0`` → ``"0,00"``), exactly (JSON numbers are read as
    :class:`~decimal.Decimal`). ``_id`` and ``_full_text`` are dropped.

Retries
    Connect/read timeouts, network errors (refused, reset, a connection closed without an
    answer), HTTP 429 (its ``Retry-After`` is honoured) and 502/503/504 are retried up to
    ``retries`` times with exponential backoff (``backoff_s`` × 2ⁿ, capped at
    ``max_backoff_s``). Any other 4xx/5xx, a body that is not JSON and ``success: false``
    fail at once with :class:`CkanError`.

Output
    :func:`download_resource` writes a ``;``-separated UTF-8 CSV (header: the datastore's
    field order minus ``_id``; minimal quoting) through a temporary file in the destination
    folder renamed over it (:func:`ysh.kit.files.atomic_write`), so the destination is
    either the previous file or the complete new one. :func:`ysh.tariffs.load.load_file` reads it like ANEEL's own CSV.

An ``api_key`` (only needed for private resources) is sent as the ``Authorization``
header and never appears in logs or error messages.
"""

from __future__ import annotations

import csv
import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from ..kit.files import atomic_write

log = logging.getLogger("ysh.tariffs.ckan")

ANEEL_CKAN_URL = "https://dadosabertos.aneel.gov.br"

# DataStore resource ids on dadosabertos.aneel.gov.br. Not fetched from ANEEL here (no
# network access while writing this); taken from public code and notes that call
# datastore_search / download these resources, several independent ones each:
# * tariffs: dataset "tarifas-distribuidoras-energia-eletrica" (package 5a583f3e-1646-4f67-
#   bf0f-69db4203e89e), resource "tarifas-homologadas-distribuidoras-energia-eletrica.csv";
# * flags: dataset "bandeiras-tarifarias" (package 7f43a020-6dc5-44b8-80b4-d97eaa94436c),
#   resource "bandeira-tarifaria-acionamento.csv";
# * fio_b: dataset "componentes-tarifarias" (package 613e6b74-1a4b-4c48-a231-096815e96bd5)
#   publishes ONE RESOURCE PER YEAR of validity start ("componentes-tarifarias-2026.csv",
#   …; the Parquet copies are separate resources without a DataStore table). The default
#   is the 2026 CSV; see ANEEL_FIO_B_RESOURCES_BY_YEAR. Check the list with
#   GET /api/3/action/package_show?id=componentes-tarifarias when a new year starts.
ANEEL_FIO_B_RESOURCES_BY_YEAR = {
    2024: "70ac08d1-53fc-4ceb-9c22-3a3a2c70e9fa",
    2025: "a4060165-3a0c-404f-926c-83901088b67c",
    2026: "e8717aa8-2521-453f-bf16-fbb9a16eea39",
}
ANEEL_RESOURCES = {
    "tariffs": "fcf2906c-7c32-4b9b-a637-054e7a5234f4",
    "fio_b": ANEEL_FIO_B_RESOURCES_BY_YEAR[2026],
    "flags": "0591b8f6-fe54-437b-b72b-1aa2efd46e42",
}

MAX_PAGE_SIZE = 32_000  # CKAN's default ckan.datastore.search.rows_max
RETRY_STATUSES = frozenset({429, 502, 503, 504})
HIDDEN_FIELDS = frozenset({"_id", "_full_text"})
NUMERIC_TYPES = frozenset({"numeric", "decimal", "float", "float4", "float8", "real", "double precision", "money"})
DATE_TYPES = frozenset({"date", "timestamp", "timestamptz", "timestamp without time zone",
                        "timestamp with time zone"})
_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]00:00:00(?:\.0+)?(?:Z|[+-]00:?00)?$")


class CkanError(RuntimeError):
    """A CKAN call failed for good (after the retries, or at once for a non-retryable answer).

    ``status`` is the HTTP status (None for a network failure), ``url`` the request URL
    with any credentials removed, ``error`` CKAN's error object when it sent one.
    """

    def __init__(self, message: str, *, status: int | None = None, url: str = "",
                 resource_id: str | None = None, error: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.url = url
        self.resource_id = resource_id
        self.error = error


class Page(NamedTuple):
    """One ``datastore_search`` page, records already in ANEEL text form."""

    offset: int
    total: int | None
    fields: tuple[str, ...]  # datastore order, without _id/_full_text
    records: list[dict[str, str]]


class DownloadResult(NamedTuple):
    path: Path
    rows: int
    pages: int
    fields: tuple[str, ...]


# --------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------


def decimal_comma(value: int | float | Decimal) -> str:
    """A number as ANEEL writes it: decimal comma, at least two decimals, no exponent
    (``123.45`` → ``"123,45"``, ``0`` → ``"0,00"``, ``Decimal("1E+2")`` → ``"100,00"``)."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return str(number)
    whole, _, fraction = format(number, "f").partition(".")
    return f"{whole},{fraction.ljust(2, '0')}"


def to_aneel_text(value: Any, field_type: str = "text") -> str:
    """One datastore value → the text the ANEEL CSVs would hold (see the module doc)."""
    if value is None:
        return ""
    kind = (field_type or "text").strip().lower()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if kind in DATE_TYPES:
            match = _MIDNIGHT.match(value)
            return match.group(1) if match else value
        return value
    if isinstance(value, int):
        return decimal_comma(value) if kind in NUMERIC_TYPES else str(value)
    if isinstance(value, (float, Decimal)):
        return decimal_comma(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _redact(url: str | httpx.URL) -> str:
    """The URL without user:password and without key/token query parameters."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    secret = [k for k in parsed.params.keys() if re.search(r"key|token|secret|password", k, re.I)]
    for key in secret:
        parsed = parsed.copy_remove_param(key)
    return str(parsed)


def _retry_after(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        kind = error.get("__type")
        message = error.get("message")
        details = {k: v for k, v in error.items() if k not in ("__type", "message")}
        parts = [str(p) for p in (kind, message) if p]
        if details:
            parts.append(json.dumps(details, ensure_ascii=False, default=str)[:300])
        return ": ".join(parts) or "unspecified error"
    return str(error)[:300]


# --------------------------------------------------------------------------------------
# the client
# --------------------------------------------------------------------------------------


class CkanClient:
    """A CKAN action-API client for ``datastore_search``, with paging and retries.

    Parameters
    ----------
    base_url
        the portal, e.g. :data:`ANEEL_CKAN_URL` (a path prefix is kept).
    timeout_s
        connect/read/write timeout of each request.
    retries
        retries after the first attempt for transient failures (so ``retries + 1``
        attempts at most).
    backoff_s, max_backoff_s
        wait before retry *n* (0-based): ``min(backoff_s * 2**n, max_backoff_s)``; a
        ``Retry-After`` header replaces it (also capped at ``max_backoff_s``).
    page_size
        rows asked per page, 1 … 32 000.
    transport
        an :mod:`httpx` transport (tests); when given, proxy settings from the
        environment are not used.
    api_key
        sent as the ``Authorization`` header; never logged.
    """

    def __init__(self, base_url: str = ANEEL_CKAN_URL, *, timeout_s: float = 30.0, retries: int = 4,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, page_size: int = 10_000,
                 transport: httpx.BaseTransport | None = None, api_key: str | None = None):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
        if retries < 0 or backoff_s < 0 or max_backoff_s < 0 or timeout_s <= 0:
            raise ValueError("retries, backoff_s and max_backoff_s must be >= 0 and timeout_s > 0")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.page_size = page_size
        headers = {"Accept": "application/json", "User-Agent": "ysh-tariffs-ckan/1 (+httpx)"}
        if api_key:
            headers["Authorization"] = api_key
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers, transport=transport,
                                  follow_redirects=True)

    def __repr__(self) -> str:
        return f"CkanClient({_redact(self.base_url)!r}, page_size={self.page_size}, retries={self.retries})"

    def __enter__(self) -> CkanClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- one call ------------------------------------------------------------------------

    def datastore_search(self, resource_id: str, offset: int = 0, limit: int | None = None, *,
                         sort: str | None = "_id") -> dict[str, Any]:
        """One ``datastore_search`` call; the ``result`` object as CKAN sent it (numbers
        as :class:`~decimal.Decimal` when not integers).

        Raises
        ------
        CkanError
            HTTP error, ``success: false``, a body that is not CKAN JSON, or transient
            failures that outlived the retries.
        """
        params: dict[str, str | int] = {"resource_id": resource_id, "offset": int(offset),
                                        "limit": int(limit if limit is not None else self.page_size)}
        if sort:
            params["sort"] = sort
        return self._call("datastore_search", params, resource_id)

    def _call(self, action: str, params: dict[str, str | int], resource_id: str | None) -> dict[str, Any]:
        url = f"{self.base_url}/api/3/action/{action}"
        what = f"CKAN {action}" + (f" of resource {resource_id!r}" if resource_id else "")
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            status: int | None = None
            try:
                response = self._http.get(url, params=params)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                shown = _redact(exc.request.url) if _has_request(exc) else _redact(url)
                reason = f"{type(exc).__name__}: {exc}"
            else:
                shown = _redact(response.request.url)
                status = response.status_code
                if status not in RETRY_STATUSES:
                    return self._result(response, what, shown, resource_id)
                reason = f"HTTP {status}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt >= self.retries:
                raise CkanError(f"{what} failed after {attempt + 1} attempt(s): {reason} [GET {shown}]",
                                status=status, url=shown, resource_id=resource_id)
            delay = retry_after if retry_after is not None else self.backoff_s * 2 ** attempt
            delay = min(delay, self.max_backoff_s)
            log.warning("%s: %s; retry %d/%d in %.2fs [GET %s]", what, reason, attempt + 1, self.retries,
                        delay, shown)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _result(response: httpx.Response, what: str, shown: str, resource_id: str | None) -> dict[str, Any]:
        status = response.status_code
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            body = None
        if not response.is_success:
            error = body.get("error") if isinstance(body, dict) else None
            detail = _error_text(error) if error is not None else (response.text[:200].strip() or response.reason_phrase)
            raise CkanError(f"{what} failed: HTTP {status}: {detail} [GET {shown}]", status=status, url=shown,
                            resource_id=resource_id, error=error if isinstance(error, dict) else None)
        if not isinstance(body, dict):
            raise CkanError(f"{what} failed: HTTP {status} but the body is not CKAN JSON: "
                            f"{response.text[:200].strip()!r} [GET {shown}]", status=status, url=shown,
                            resource_id=resource_id)
        if body.get("success") is not True:
            error = body.get("error")
            raise CkanError(f"{what} failed: success=false: {_error_text(error)} [GET {shown}]", status=status,
                            url=shown, resource_id=resource_id, error=error if isinstance(error, dict) else None)
        result = body.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("records"), list) \
                or not isinstance(result.get("fields"), list):
            raise CkanError(f"{what} failed: no result.records/result.fields in the answer [GET {shown}]",
                            status=status, url=shown, resource_id=resource_id)
        return result

    # -- paging --------------------------------------------------------------------------

    def iter_pages(self, resource_id: str) -> Iterator[Page]:
        """Every page of a resource, in ``_id`` order (see the module doc for the stop
        rules and the replaced-resource guard). An empty resource gives one empty page, so
        its fields are known."""
        offset = 0
        first: tuple[int | None, tuple[str, ...]] | None = None
        while True:
            result = self.datastore_search(resource_id, offset, self.page_size)
            total = result.get("total")
            total = int(total) if isinstance(total, (int, Decimal)) else None
            types = {str(f.get("id")): str(f.get("type") or "text") for f in result["fields"] if isinstance(f, dict)}
            fields = tuple(name for name in types if name not in HIDDEN_FIELDS)
            if first is None:
                first = (total, fields)
            elif (total, fields) != first:
                raise CkanError(
                    f"resource {resource_id!r} changed while it was being read (total {first[0]} → {total}, "
                    f"fields {'unchanged' if fields == first[1] else 'changed'}) at offset {offset}: it was "
                    "replaced; download it again", resource_id=resource_id)
            records = [{name: to_aneel_text(record.get(name), types[name]) for name in fields}
                       for record in result["records"]]
            if not records:
                if total is not None and offset < total:
                    log.warning("resource %r: empty page at offset %d of %d rows", resource_id, offset, total)
                if offset == 0:
                    yield Page(offset, total, fields, records)  # an empty resource still has a header
                return
            yield Page(offset, total, fields, records)
            offset += len(records)
            if total is not None and offset >= total:
                return

    def iter_records(self, resource_id: str) -> Iterator[dict[str, str]]:
        """Every record of a resource (field → ANEEL text, ``_id`` dropped), in order."""
        for page in self.iter_pages(resource_id):
            yield from page.records


def _has_request(exc: httpx.HTTPError) -> bool:
    """Whether the exception carries its request (httpx raises RuntimeError when not)."""
    try:
        return exc.request is not None
    except RuntimeError:
        return False


# --------------------------------------------------------------------------------------
# to a file
# --------------------------------------------------------------------------------------


def download_resource(client: CkanClient, resource_id: str, dest: Path,
                      progress: Callable[[int, int], None] | None = None) -> DownloadResult:
    """A whole resource → a ``;``-separated UTF-8 CSV at ``dest``, atomically.

    ``progress(done_rows, total)`` is called after each page. The destination's folder is
    created if needed; on any failure the temporary file is removed and ``dest`` is left
    as it was.

    Raises
    ------
    CkanError
        the download failed, the resource was replaced while reading, or it ended with
        fewer rows than its ``total``.
    """
    dest = Path(dest)
    rows = pages = 0
    fields: tuple[str, ...] = ()
    total: int | None = None
    with atomic_write(dest, newline="", suffix=".part") as handle:
        writer = csv.writer(handle, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        for page in client.iter_pages(resource_id):
            if pages == 0:
                fields = page.fields
                writer.writerow(fields)
            writer.writerows([record[name] for name in fields] for record in page.records)
            pages += 1
            rows += len(page.records)
            total = page.total
            if progress is not None:
                progress(rows, total if total is not None else rows)
        if total is not None and rows < total:
            raise CkanError(f"resource {resource_id!r} ended after {rows} of its {total} rows (empty page)",
                            resource_id=resource_id)
    log.info("resource %r: %d rows in %d page(s) → %s", resource_id, rows, pages, dest)
    return DownloadResult(dest, rows, pages, fields)

