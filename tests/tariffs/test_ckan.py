"""The CKAN ``datastore_search`` client against a real HTTP server on 127.0.0.1 that serves
the recorded ANEEL responses in ``fixtures/ckan/`` (built from the sample files by
``fixtures/ckan/record.py``) and injects faults. Nothing here touches the network."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ysh.tariffs.ckan import (ANEEL_CKAN_URL, ANEEL_RESOURCES, CkanClient, CkanError, DownloadResult,
                              _retry_after, decimal_comma, download_resource, to_aneel_text)
from ysh.tariffs.load import load_file

from ..conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures" / "ckan"
SAMPLES = REPO / "data" / "sample" / "tariffs"
SAMPLE_FILES = {
    "tariffs": "tarifas-homologadas-distribuidoras-energia-eletrica.csv",
    "fio_b": "componentes-tarifarias.csv",
    "flags": "bandeira-tarifaria-acionamento.csv",
}
SUBSET = {"tariffs": ("SigAgente", "CEMIG-D"), "fio_b": ("SigNomeAgente", "CEMIG-D"), "flags": None}
TYPED = "typed-flags"  # the flags re-typed numeric/timestamp, with a _full_text column
TYPED_TARIFFS = "typed-tariffs"
API_KEY = "s3cr3t-api-key-0123"


# --------------------------------------------------------------------------------------
# recorded responses and the fake portal
# --------------------------------------------------------------------------------------


def recorded(dataset: str) -> tuple[str, list[dict], list[dict]]:
    """resource id, fields and records of a dataset's recorded pages, checked to be one
    consistent CKAN paging."""
    files = sorted(FIXTURES.glob(f"{dataset}_offset*.json"), key=lambda p: int(p.stem.split("offset")[1]))
    assert files, dataset
    records: list[dict] = []
    resource_id = fields = None
    for path in files:
        body = json.loads(path.read_text(encoding="utf-8"))
        assert body["success"] is True and "help" in body
        result = body["result"]
        assert result["offset"] == len(records) == int(path.stem.split("offset")[1])
        assert set(result["_links"]) == {"start", "next"}
        resource_id = resource_id or result["resource_id"]
        fields = fields or result["fields"]
        assert (result["resource_id"], result["fields"]) == (resource_id, fields)
        records += result["records"]
    assert result["total"] == len(records)
    assert [r["_id"] for r in records] == list(range(1, len(records) + 1))
    return resource_id, fields, records


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", ".") or "0")


def typed(fields: list[dict], records: list[dict], numeric: set[str], dates: set[str]) -> tuple[list, list]:
    """The same table as a datastore that typed its columns would return it."""
    new_fields = [{"id": f["id"], "type": "numeric" if f["id"] in numeric else "timestamp" if f["id"] in dates
                   else f["type"]} for f in fields] + [{"id": "_full_text", "type": "tsvector"}]
    new_records = []
    for record in records:
        row = dict(record)
        for name in numeric:
            row[name] = _number(row[name])
        for name in dates:
            row[name] = f"{row[name]}T00:00:00" if row[name] else None
        row["_full_text"] = "'cemig':1 'verde':2"
        new_records.append(row)
    return new_fields, new_records


class FakeCkan:
    """``/api/3/action/datastore_search`` over in-memory tables, any page size, with a FIFO
    of faults consumed one per request (``None``: answer normally)."""

    def __init__(self, tables: dict[str, tuple[list[dict], list[dict]]]):
        self.tables = tables
        self.faults: deque = deque()
        self.requests: list[dict] = []
        self.rows_max = 32_000
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body in one segment (no Nagle/delayed-ACK stall per request)

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.rows_max = 32_000

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def send(handler, status: int, body: dict | str, headers: dict[str, str] | None = None) -> None:
        data = (body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=float)).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json;charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def handle(self, handler) -> None:
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append({"path": split.path, "query": query, "headers": dict(handler.headers)})
            fault = self.faults.popleft() if self.faults else None
        kind = fault[0] if fault else None
        if kind == "status":
            return self.send(handler, fault[1], "<html>busy</html>", fault[2] if len(fault) > 2 else None)
        if kind == "reset":
            handler.close_connection = True
            return None
        if kind == "delay":
            time.sleep(fault[1])
        if split.path != "/api/3/action/datastore_search":
            return self.send(handler, 404, {"success": False, "error": {"__type": "Not Found Error",
                                                                        "message": "Not found"}})
        rid = query.get("resource_id", "")
        help_url = f"{self.url}/api/3/action/help_show?name=datastore_search"
        if rid not in self.tables:
            return self.send(handler, 404, {"help": help_url, "success": False, "error": {
                "__type": "Not Found Error", "message": f'Not found: Resource "{rid}" was not found.'}})
        try:
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
            assert offset >= 0 and limit >= 0 and query.get("sort", "_id") in ("_id", "_id asc")
        except (ValueError, AssertionError):
            return self.send(handler, 409, {"help": help_url, "success": False, "error": {
                "__type": "Validation Error", "offset": ["Invalid integer"]}})
        limit = min(limit, self.rows_max)
        fields, records = self.tables[rid]
        page = [] if kind == "empty" else records[offset:offset + limit]
        total = len(records) + (fault[1] if kind == "total" else 0)
        base = f"/api/3/action/datastore_search?resource_id={rid}&limit={limit}"
        return self.send(handler, 200, {"help": help_url, "success": True, "result": {
            "include_total": True, "limit": limit, "offset": offset, "records_format": "objects",
            "resource_id": rid, "total_was_estimated": False, "fields": fields, "records": page,
            "_links": {"start": base, "next": f"{base}&offset={offset + limit}"}, "total": total}})


@pytest.fixture(scope="module")
def tables() -> dict[str, tuple[list[dict], list[dict]]]:
    out = {}
    for dataset in SAMPLE_FILES:
        rid, fields, records = recorded(dataset)
        out[rid] = (fields, records)
    flags_fields, flags_records = out[ANEEL_RESOURCES["flags"]]
    out[TYPED] = typed(flags_fields, flags_records, {"VlrAdicionalBandeira"}, {"DatCompetencia",
                                                                              "DatGeracaoConjuntoDados"})
    t_fields, t_records = out[ANEEL_RESOURCES["tariffs"]]
    out[TYPED_TARIFFS] = typed(t_fields, t_records, {"VlrTUSD", "VlrTE"},
                               {"DatGeracaoConjuntoDados", "DatInicioVigencia", "DatFimVigencia"})
    return out


@pytest.fixture(scope="module")
def portal(tables):
    fake = FakeCkan(tables)
    yield fake
    fake.stop()


@pytest.fixture()
def ckan(portal):
    portal.reset()
    return portal


def client(portal: FakeCkan, **kwargs) -> CkanClient:
    options = {"backoff_s": 0.01, "timeout_s": 5.0, "page_size": 50, "transport": httpx.HTTPTransport()}
    options.update(kwargs)
    return CkanClient(portal.url, **options)


def data_requests(portal: FakeCkan) -> list[dict]:
    return [r["query"] for r in portal.requests]


def without_hidden(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("_id", "_full_text")}


# --------------------------------------------------------------------------------------
# paging and values
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 50, 91, 92, 100, 32_000])
def test_paging_collects_every_record_in_order(ckan, tables, page_size):
    rid = ANEEL_RESOURCES["tariffs"]
    expected = [without_hidden(r) for r in tables[rid][1]]
    with client(ckan, page_size=page_size) as c:
        got = list(c.iter_records(rid))
    assert got == expected
    assert len(got) == 92
    offsets = [int(q["offset"]) for q in data_requests(ckan)]
    assert offsets == list(range(0, 92, page_size))  # stops on offset >= total, no extra call
    assert {q["limit"] for q in data_requests(ckan)} == {str(page_size)}
    assert {q["sort"] for q in data_requests(ckan)} == {"_id"}


def test_a_silent_server_cap_on_limit_skips_nothing(ckan, tables):
    ckan.rows_max = 40  # like ckan.datastore.search.rows_max, below the asked page size
    rid = ANEEL_RESOURCES["flags"]
    with client(ckan, page_size=100) as c:
        got = list(c.iter_records(rid))
    assert got == [without_hidden(r) for r in tables[rid][1]]
    assert [int(q["offset"]) for q in data_requests(ckan)] == [0, 40, 80, 120]


def test_records_keep_the_datastore_field_order_and_drop_id(ckan):
    with client(ckan) as c:
        pages = list(c.iter_pages(ANEEL_RESOURCES["tariffs"]))
    assert [p.offset for p in pages] == [0, 50]
    assert pages[0].fields[0] == "DatGeracaoConjuntoDados" and pages[0].fields[-1] == "VlrTE"
    assert len(pages[0].fields) == 17 and "_id" not in pages[0].fields
    assert all(list(r) == list(pages[0].fields) for p in pages for r in p.records)
    assert pages[0].records[0]["VlrTUSD"] == "405,42"


def test_datastore_search_returns_the_result_object(ckan):
    with client(ckan) as c:
        result = c.datastore_search(ANEEL_RESOURCES["flags"], offset=130, limit=50)
    assert result["total"] == 136 and result["offset"] == 130 and len(result["records"]) == 6
    assert result["resource_id"] == ANEEL_RESOURCES["flags"]
    assert result["fields"][0] == {"id": "_id", "type": "int"}


def test_numeric_and_timestamp_fields_become_aneel_text(ckan, tables):
    with client(ckan) as c:
        got = list(c.iter_records(TYPED))
    text = [without_hidden(r) for r in tables[ANEEL_RESOURCES["flags"]][1]]
    assert got[0] == {"DatGeracaoConjuntoDados": "2026-05-01", "DatCompetencia": "2015-01-01",
                      "NomBandeiraAcionada": "Vermelha P1", "VlrAdicionalBandeira": "30,00"}
    assert all("_full_text" not in r and "_id" not in r for r in got)
    assert [_number(r["VlrAdicionalBandeira"]) for r in got] == [_number(r["VlrAdicionalBandeira"]) for r in text]
    assert [r["DatCompetencia"] for r in got] == [r["DatCompetencia"] for r in text]


@pytest.mark.parametrize(("value", "field_type", "text"), [
    (None, "text", ""),
    ("405,42", "text", "405,42"),
    (",00", "text", ",00"),
    (7, "int", "7"),
    (7, "text", "7"),
    (Decimal("123.45"), "numeric", "123,45"),
    (123.45, "float8", "123,45"),
    (0, "numeric", "0,00"),
    (Decimal("0"), "numeric", "0,00"),
    (Decimal("30.00"), "numeric", "30,00"),
    (Decimal("-5.5"), "numeric", "-5,50"),
    (Decimal("1E+2"), "numeric", "100,00"),
    (Decimal("214.53560037400001"), "numeric", "214,53560037400001"),
    ("2024-01-01T00:00:00", "timestamp", "2024-01-01"),
    ("2024-01-01", "date", "2024-01-01"),
    ("2024-01-01T13:45:00", "timestamp", "2024-01-01T13:45:00"),
    ("2024-01-01T00:00:00", "text", "2024-01-01T00:00:00"),
    (True, "bool", "true"),
])
def test_to_aneel_text(value, field_type, text):
    assert to_aneel_text(value, field_type) == text


def test_decimal_comma_round_trips_through_the_aneel_parser():
    from ysh.tariffs.aneel import parse_aneel_decimal

    for value in (Decimal("0"), Decimal("0.5"), Decimal("405.42"), Decimal("1234567.891")):
        assert parse_aneel_decimal(decimal_comma(value)) == value


# --------------------------------------------------------------------------------------
# retries and errors
# --------------------------------------------------------------------------------------


def test_two_503_then_success_is_retried(ckan):
    ckan.faults.extend([("status", 503), ("status", 503)])
    with client(ckan, retries=2) as c:
        result = c.datastore_search(ANEEL_RESOURCES["flags"], 0, 10)
    assert len(result["records"]) == 10
    assert len(ckan.requests) == 3


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried(ckan, status):
    ckan.faults.append(("status", status))
    with client(ckan, retries=1) as c:
        assert len(c.datastore_search(ANEEL_RESOURCES["flags"], 0, 5)["records"]) == 5
    assert len(ckan.requests) == 2


def test_429_is_retried_after_its_retry_after(ckan):
    ckan.faults.append(("status", 429, {"Retry-After": "0"}))
    started = time.monotonic()
    with client(ckan, backoff_s=5.0) as c:  # Retry-After: 0 replaces the 5 s backoff
        records = list(c.iter_records(ANEEL_RESOURCES["flags"]))
    assert time.monotonic() - started < 2.5
    assert len(records) == 136
    assert len(ckan.requests) == 1 + 3


def test_a_long_retry_after_is_capped_by_max_backoff(ckan):
    ckan.faults.append(("status", 503, {"Retry-After": "3600"}))
    started = time.monotonic()
    with client(ckan, max_backoff_s=0.05) as c:
        assert len(c.datastore_search(ANEEL_RESOURCES["flags"], 0, 1)["records"]) == 1
    assert time.monotonic() - started < 2


def test_retry_after_header_forms():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    when = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < _retry_after(when) <= 30
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_persistent_503_fails_after_the_retries(ckan, caplog):
    ckan.faults.extend([("status", 503)] * 10)
    with client(ckan, retries=3) as c, pytest.raises(CkanError) as raised:
        list(c.iter_records(ANEEL_RESOURCES["flags"]))
    assert len(ckan.requests) == 4
    assert raised.value.status == 503
    message = str(raised.value)
    assert "HTTP 503" in message and "4 attempt" in message and ANEEL_RESOURCES["flags"] in message
    assert "/api/3/action/datastore_search?" in message
    assert len([r for r in caplog.records if r.name == "ysh.tariffs.ckan" and r.levelno == logging.WARNING]) == 3


def test_a_slow_answer_times_out_and_is_retried(ckan):
    ckan.faults.append(("delay", 1.0))
    with client(ckan, timeout_s=0.25, retries=2) as c:
        result = c.datastore_search(ANEEL_RESOURCES["flags"], 0, 3)
    assert len(result["records"]) == 3
    assert len(ckan.requests) == 2


def test_persistent_timeouts_end_in_ckan_error(ckan):
    ckan.faults.extend([("delay", 0.6)] * 2)
    with client(ckan, timeout_s=0.2, retries=1) as c, pytest.raises(CkanError) as raised:
        c.datastore_search(ANEEL_RESOURCES["flags"], 0, 3)
    assert raised.value.status is None
    assert "ReadTimeout" in str(raised.value) and "2 attempt" in str(raised.value)


def test_a_dropped_connection_is_retried(ckan):
    ckan.faults.append(("reset",))
    with client(ckan, retries=1) as c:
        assert len(c.datastore_search(ANEEL_RESOURCES["flags"], 0, 2)["records"]) == 2
    assert len(ckan.requests) == 2


def test_refused_connection_is_a_ckan_error_after_retries():
    with socket.socket() as sock:  # a port nobody listens on: bind, read the port, close
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = CkanClient(f"http://127.0.0.1:{port}", retries=1, backoff_s=0.01, transport=httpx.HTTPTransport())
    with c, pytest.raises(CkanError, match=r"2 attempt\(s\): ConnectError"):
        c.datastore_search("x")


def test_unknown_resource_fails_at_once_naming_it(ckan):
    with client(ckan, retries=4) as c, pytest.raises(CkanError) as raised:
        list(c.iter_records("no-such-resource"))
    assert len(ckan.requests) == 1
    error = raised.value
    assert error.status == 404 and error.resource_id == "no-such-resource"
    assert error.error == {"__type": "Not Found Error", "message": 'Not found: Resource "no-such-resource" was not found.'}
    assert "'no-such-resource'" in str(error) and "HTTP 404" in str(error) and "Not Found Error" in str(error)


def test_a_validation_error_is_not_retried(ckan):
    with client(ckan, retries=4) as c, pytest.raises(CkanError, match="HTTP 409: Validation Error") as raised:
        c.datastore_search(ANEEL_RESOURCES["flags"], offset=-1)
    assert len(ckan.requests) == 1 and raised.value.status == 409


def test_success_false_with_200_is_not_retried():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"help": "h", "success": False, "error": {"__type": "Authorization Error",
                                                                                  "message": "Access denied"}})

    calls = []
    transport = httpx.MockTransport(lambda r: calls.append(r) or handler(r))
    with CkanClient("https://ckan.example", transport=transport, backoff_s=0) as c, \
            pytest.raises(CkanError, match="success=false: Authorization Error: Access denied"):
        c.datastore_search("abc")
    assert len(calls) == 1


def test_a_body_that_is_not_json_is_a_ckan_error():
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>maintenance</html>"))
    with CkanClient("https://ckan.example", transport=transport) as c, pytest.raises(CkanError, match="not CKAN JSON"):
        c.datastore_search("abc")


def test_api_key_is_sent_as_authorization_and_never_shown(ckan, caplog):
    caplog.set_level(logging.DEBUG, logger="ysh.tariffs.ckan")
    ckan.faults.extend([("status", 503)] * 5)
    with client(ckan, api_key=API_KEY, retries=2) as c:
        assert API_KEY not in repr(c)
        with pytest.raises(CkanError) as raised:
            c.datastore_search(ANEEL_RESOURCES["flags"])
    assert {r["headers"].get("Authorization") for r in ckan.requests} == {API_KEY}
    assert API_KEY not in str(raised.value) and API_KEY not in caplog.text


def test_credentials_in_the_base_url_are_not_shown():
    transport = httpx.MockTransport(lambda r: httpx.Response(404, json={"success": False, "error": {
        "__type": "Not Found Error", "message": "Not found"}}))
    with CkanClient("https://user:hunter2@ckan.example/", transport=transport) as c, \
            pytest.raises(CkanError) as raised:
        c.datastore_search("abc")
    assert "hunter2" not in str(raised.value) and "hunter2" not in raised.value.url and "hunter2" not in repr(c)
    assert "https://ckan.example/api/3/action/datastore_search?resource_id=abc" in str(raised.value)


@pytest.mark.parametrize("page_size", [0, 32_001])
def test_page_size_is_bounded(page_size):
    with pytest.raises(ValueError):
        CkanClient(page_size=page_size)


def test_the_client_closes_its_connections(ckan):
    with client(ckan) as c:
        c.datastore_search(ANEEL_RESOURCES["flags"], 0, 1)
    assert c._http.is_closed


def test_aneel_constants():
    assert ANEEL_CKAN_URL == "https://dadosabertos.aneel.gov.br"
    assert set(ANEEL_RESOURCES) == {"tariffs", "fio_b", "flags"}
    for rid in ANEEL_RESOURCES.values():
        assert [len(part) for part in rid.split("-")] == [8, 4, 4, 4, 12]


# --------------------------------------------------------------------------------------
# replaced resources and short reads
# --------------------------------------------------------------------------------------


def test_a_total_that_changes_between_pages_is_an_error(ckan, tmp_path):
    ckan.faults.extend([None, ("total", +5)])
    dest = tmp_path / "flags.csv"
    with client(ckan) as c, pytest.raises(CkanError, match="changed while it was being read.*136 → 141"):
        download_resource(c, ANEEL_RESOURCES["flags"], dest)
    assert list(tmp_path.iterdir()) == []


def test_an_early_empty_page_stops_iteration_but_fails_the_download(ckan, tmp_path, caplog):
    ckan.faults.extend([None, ("empty",)])
    with client(ckan) as c:
        assert len(list(c.iter_records(ANEEL_RESOURCES["flags"]))) == 50
    assert "empty page at offset 50 of 136" in caplog.text
    ckan.reset()
    ckan.faults.extend([None, ("empty",)])
    with client(ckan) as c, pytest.raises(CkanError, match="ended after 50 of its 136 rows"):
        download_resource(c, ANEEL_RESOURCES["flags"], tmp_path / "flags.csv")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# download_resource
# --------------------------------------------------------------------------------------


def sample_subset(dataset: str):
    """What load_file gives for the sample file, restricted to the recorded subset, with
    file and line cleared: (rows, quarantine as (reason, detail, raw))."""
    path = SAMPLES / SAMPLE_FILES[dataset]
    loaded = load_file(path.read_bytes(), str(path))
    rows = getattr(loaded, dataset)
    quarantine = loaded.quarantine
    if SUBSET[dataset]:
        key, value = SUBSET[dataset]
        rows = [r for r in rows if r.utility == value]
        quarantine = [q for q in quarantine if json.loads(q.raw).get(key) == value]
    return ([r._replace(source_file="", line=0) for r in rows],
            [(q.reason, q.detail, q.raw) for q in quarantine])


@pytest.mark.parametrize("dataset", ["tariffs", "fio_b", "flags"])
def test_download_parses_into_the_same_rows_as_the_sample_file(ckan, tmp_path, dataset):
    dest = tmp_path / "aneel" / f"{dataset}.csv"
    with client(ckan, page_size=40) as c:
        result = download_resource(c, ANEEL_RESOURCES[dataset], dest)
    assert isinstance(result, DownloadResult)
    loaded = load_file(dest.read_bytes(), str(dest))
    assert loaded.dataset == dataset and loaded.encoding == "utf-8"
    rows, quarantine = sample_subset(dataset)
    assert [r._replace(source_file="", line=0) for r in getattr(loaded, dataset)] == rows
    assert [(q.reason, q.detail, q.raw) for q in loaded.quarantine] == quarantine
    assert rows  # the subset is not empty
    if dataset == "tariffs":
        assert len(quarantine) == 2  # the planted CEMIG-D bad rows travel through the datastore too
    assert result.path == dest and result.rows == len(recorded(dataset)[2])
    assert result.pages == -(-result.rows // 40)
    assert result.fields == tuple(dest.read_text(encoding="utf-8").splitlines()[0].split(";"))
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary file left


def test_download_of_typed_columns_parses_into_the_same_rows(ckan, tmp_path):
    for resource, dataset in ((TYPED, "flags"), (TYPED_TARIFFS, "tariffs")):
        dest = tmp_path / f"{resource}.csv"
        with client(ckan, page_size=64) as c:
            download_resource(c, resource, dest)
        loaded = load_file(dest.read_bytes(), str(dest))
        rows, quarantine = sample_subset(dataset)
        assert [r._replace(source_file="", line=0) for r in getattr(loaded, dataset)] == rows
        assert [q.reason for q in loaded.quarantine] == [reason for reason, _, _ in quarantine]
        assert "_full_text" not in dest.read_text(encoding="utf-8").splitlines()[0]


def test_download_writes_semicolon_utf8_with_minimal_quoting(ckan, tmp_path):
    dest = tmp_path / "tariffs.csv"
    with client(ckan) as c:
        download_resource(c, ANEEL_RESOURCES["tariffs"], dest)
    raw = dest.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8").splitlines()
    assert lines[0] == ("DatGeracaoConjuntoDados;DscREH;SigAgente;NumCNPJDistribuidora;DatInicioVigencia;"
                        "DatFimVigencia;DscBaseTarifaria;DscSubGrupo;DscModalidadeTarifaria;DscClasse;DscSubClasse;"
                        "DscDetalhe;NomPostoTarifario;DscUnidadeTerciaria;SigAgenteAcessante;VlrTUSD;VlrTE")
    assert lines[1].startswith("2026-05-01;RESOLUÇÃO HOMOLOGATÓRIA Nº 3.199, DE 21 DE MAIO DE 2023;CEMIG-D;")
    assert lines[1].endswith(";405,42;280,51")
    assert len(lines) == 93


def test_progress_is_called_per_page_with_increasing_counts(ckan, tmp_path):
    calls: list[tuple[int, int]] = []
    with client(ckan, page_size=30) as c:
        result = download_resource(c, ANEEL_RESOURCES["flags"], tmp_path / "f.csv",
                                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(30, 136), (60, 136), (90, 136), (120, 136), (136, 136)]
    assert result.pages == 5 and result.rows == 136


def test_a_failed_download_leaves_the_previous_file_untouched(ckan, tmp_path):
    dest = tmp_path / "flags.csv"
    dest.write_text("previous complete file\n", encoding="utf-8")
    ckan.faults.extend([None] + [("status", 503)] * 10)
    seen: list[int] = []
    with client(ckan, retries=2) as c, pytest.raises(CkanError, match="HTTP 503"):
        download_resource(c, ANEEL_RESOURCES["flags"], dest, progress=lambda done, total: seen.append(done))
    assert seen == [50]  # one page had been written to the temporary file
    assert dest.read_text(encoding="utf-8") == "previous complete file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["flags.csv"]


def test_a_failed_first_download_creates_no_file(ckan, tmp_path):
    with client(ckan, retries=0) as c, pytest.raises(CkanError):
        download_resource(c, "no-such-resource", tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_resource_gives_a_header_only_file(tmp_path):
    body = {"help": "h", "success": True, "result": {
        "resource_id": "empty", "fields": [{"id": "_id", "type": "int"}] + [{"id": n, "type": "text"} for n in
                                                                             ("DatGeracaoConjuntoDados", "DatCompetencia",
                                                                              "NomBandeiraAcionada",
                                                                              "VlrAdicionalBandeira")],
        "records": [], "_links": {"start": "/s", "next": "/n"}, "total": 0, "limit": 50, "offset": 0}}
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    with CkanClient("https://ckan.example", transport=transport) as c:
        result = download_resource(c, "empty", tmp_path / "empty.csv")
    assert (result.rows, result.pages) == (0, 1)
    assert (tmp_path / "empty.csv").read_text() == "DatGeracaoConjuntoDados;DatCompetencia;NomBandeiraAcionada;VlrAdicionalBandeira\n"
    assert load_file((tmp_path / "empty.csv").read_bytes(), "empty.csv").flags == []
