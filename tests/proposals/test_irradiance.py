"""ysh.proposals.irradiance against recorded NASA POWER / PVGIS responses.

The responses are served by a real HTTP server on 127.0.0.1 (port 0) whose URLs go into
Settings; no test touches the network. The server can inject faults per API.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from ysh.proposals import irradiance as ir
from ysh.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NASA_FIXTURE = FIXTURES / "nasa_power_hourly_2023_lat-19.9_lon-43.9.json.gz"
PVGIS_FIXTURE = FIXTURES / "pvgis_tmy_lat-19.9_lon-43.9.json.gz"
BH = (-19.92, -43.94)

NASA_PATH = "/nasa/api/temporal/hourly/point"
PVGIS_PATH = "/pvgis/api/tmy"


class FakeApis:
    """State shared with the handler: bodies, a fault plan per API, and a request log.

    ``plan[api]`` is a list of actions consumed one per request; when it is empty,
    ``default[api]`` applies. Actions: ``"ok"``, an HTTP status (int), ``"hang"`` (sleep
    longer than the client timeout), ``"garbage"`` (200 with a non-JSON body).
    """

    def __init__(self) -> None:
        self.bodies = {
            "nasa": gzip.decompress(NASA_FIXTURE.read_bytes()),
            "pvgis": gzip.decompress(PVGIS_FIXTURE.read_bytes()),
        }
        self.plan: dict[str, list] = {"nasa": [], "pvgis": []}
        self.default: dict[str, object] = {"nasa": "ok", "pvgis": "ok"}
        self.requests: list[tuple[str, dict]] = []
        self.hang_s = 1.0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.plan = {"nasa": [], "pvgis": []}
            self.default = {"nasa": "ok", "pvgis": "ok"}
            self.requests.clear()

    def count(self, api: str | None = None) -> int:
        with self.lock:
            return sum(1 for a, _ in self.requests if api is None or a == api)

    def queries(self, api: str) -> list[dict]:
        with self.lock:
            return [q for a, q in self.requests if a == api]

    def next_action(self, api: str, query: dict):
        with self.lock:
            self.requests.append((api, query))
            return self.plan[api].pop(0) if self.plan[api] else self.default[api]


def _make_handler(apis: FakeApis):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            api = {NASA_PATH: "nasa", PVGIS_PATH: "pvgis"}.get(url.path)
            if api is None:
                self._send(404, b'{"message": "no such endpoint"}', "application/json")
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            action = apis.next_action(api, query)
            if action == "ok":
                self._send(200, apis.bodies[api], "application/json")
            elif action == "hang":
                time.sleep(apis.hang_s)
                try:
                    self._send(200, apis.bodies[api], "application/json")
                except OSError:
                    pass
            elif action == "garbage":
                self._send(200, b"<html>maintenance</html>", "text/html")
            elif isinstance(action, int) and 400 <= action < 500:
                if api == "pvgis":  # PVGIS answers 400s with a JSON message
                    body = json.dumps({"message": "Location over the sea. Please, select another location",
                                       "status": action}).encode()
                else:
                    body = json.dumps({"header": "bad request", "messages": ["Invalid parameter"]}).encode()
                self._send(action, body, "application/json")
            else:
                self._send(int(action), b"<html><body>Service Unavailable</body></html>", "text/html")

    return Handler


@pytest.fixture(scope="module")
def fake_apis():
    apis = FakeApis()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(apis))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    apis.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield apis
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _local_http_only(monkeypatch):
    """127.0.0.1 must never go through a proxy from the environment; short backoff."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(ir, "RETRY_BACKOFF_S", 0.01)


@pytest.fixture
def apis(fake_apis):
    fake_apis.reset()
    return fake_apis


def make_settings(tmp_path: Path, apis: FakeApis | None = None, **overrides) -> Settings:
    base = apis.base if apis is not None else "http://127.0.0.1:9"  # port 9: nothing listens
    values = dict(
        home=tmp_path / "home",
        irradiance_offline=False,
        irradiance_sources=["nasa_power", "pvgis"],
        irradiance_cache_dir=tmp_path / "cache",
        irradiance_timeout_s=2.0,
        irradiance_retries=2,
        nasa_power_url=base + NASA_PATH,
        pvgis_url=base + "/pvgis/api/",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def assert_year_frame(year: ir.IrradianceYear) -> None:
    df = year.data
    assert list(df.columns) == ["ghi", "dni", "dhi", "temp_air", "wind_speed"]
    assert len(df) == 8760
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert not df.isna().any().any()
    assert (df[["ghi", "dni", "dhi"]] >= 0).all().all()
    assert 1500 < year.annual_ghi_kwh_m2 < 2300  # kWh/m²/year, Brazil


# --- online sources ------------------------------------------------------------------------

def test_nasa_power_used_first_and_parsed(tmp_path, apis, caplog):
    caplog.set_level(logging.INFO, logger="ysh.proposals.irradiance")
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis))
    assert year.source == "nasa_power"
    assert (year.latitude, year.longitude) == (-19.9, -43.9)
    assert_year_frame(year)
    assert year.data.index[0] == pd.Timestamp("2023-01-01 00:00", tz="UTC")
    assert "2023" in year.detail and "interpolated" in year.detail  # fixture has -999 gaps
    assert apis.count("nasa") == 1 and apis.count("pvgis") == 0
    (query,) = apis.queries("nasa")
    assert query["latitude"] == "-19.9" and query["longitude"] == "-43.9"
    assert (query["start"], query["end"]) == ("20230101", "20231231")
    assert query["time-standard"] == "utc" and query["community"] == "re" and query["format"] == "json"
    assert set(query["parameters"].split(",")) == set(ir.NASA_POWER_PARAMETERS)
    assert "using nasa_power" in caplog.text
    assert (tmp_path / "cache" / "nasa_power_lat-19.9_lon-43.9.parquet").is_file()


def test_retry_after_503_then_success(tmp_path, apis):
    apis.plan["nasa"] = [503, 502]
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_retries=2))
    assert year.source == "nasa_power"
    assert apis.count("nasa") == 3 and apis.count("pvgis") == 0


def test_timeout_is_retried(tmp_path, apis):
    apis.plan["nasa"] = ["hang"]
    apis.hang_s = 1.0
    started = time.monotonic()
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_timeout_s=0.3))
    assert year.source == "nasa_power"
    assert apis.count("nasa") == 2
    assert time.monotonic() - started < 5


def test_persistent_5xx_falls_through_to_pvgis(tmp_path, apis, caplog):
    caplog.set_level(logging.INFO, logger="ysh.proposals.irradiance")
    apis.default["nasa"] = 503
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_retries=2))
    assert year.source == "pvgis"
    assert_year_frame(year)
    assert year.data.index[0] == pd.Timestamp(f"{ir.PVGIS_TMY_YEAR}-01-01 00:00", tz="UTC")
    assert "SARAH3" in year.detail
    assert apis.count("nasa") == 3  # 1 + 2 retries
    assert apis.count("pvgis") == 1
    (query,) = apis.queries("pvgis")
    assert query == {"lat": "-19.9", "lon": "-43.9", "outputformat": "json"}
    assert "source nasa_power failed" in caplog.text and "HTTP 503" in caplog.text
    assert (tmp_path / "cache" / "pvgis_lat-19.9_lon-43.9.parquet").is_file()
    assert not (tmp_path / "cache" / "nasa_power_lat-19.9_lon-43.9.parquet").exists()


def test_4xx_is_not_retried(tmp_path, apis, caplog):
    caplog.set_level(logging.INFO, logger="ysh.proposals.irradiance")
    apis.default["nasa"] = 400
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_retries=3))
    assert year.source == "pvgis"
    assert apis.count("nasa") == 1
    assert "HTTP 400 (not retried)" in caplog.text and "Invalid parameter" in caplog.text


def test_unparseable_body_fails_source_without_retry(tmp_path, apis):
    apis.default["nasa"] = "garbage"
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis))
    assert year.source == "pvgis"
    assert apis.count("nasa") == 1


def test_source_order_follows_settings(tmp_path, apis):
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_sources=["pvgis", "nasa_power"]))
    assert year.source == "pvgis"
    assert apis.count("nasa") == 0


def test_both_failing_gives_modelled(tmp_path, apis, caplog):
    caplog.set_level(logging.INFO, logger="ysh.proposals.irradiance")
    apis.default["nasa"] = 500
    apis.default["pvgis"] = 400
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_retries=1))
    assert year.source == "modelled"
    assert_year_frame(year)
    assert "modelled" in year.detail and "all online sources failed" in year.detail
    assert apis.count("nasa") == 2 and apis.count("pvgis") == 1
    assert "Location over the sea" in caplog.text
    # the modelled year is never cached: the next call tries the network again
    assert not list((tmp_path / "cache").glob("*.parquet"))
    ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_retries=0))
    assert apis.count() == 5


def test_connection_refused_gives_modelled(tmp_path):
    year = ir.get_irradiance(*BH, make_settings(tmp_path, None, irradiance_retries=1))
    assert year.source == "modelled"


# --- cache -------------------------------------------------------------------------------------

def test_cache_hit_makes_no_request(tmp_path, apis):
    settings = make_settings(tmp_path, apis)
    first = ir.get_irradiance(*BH, settings)
    assert apis.count() == 1
    second = ir.get_irradiance(*BH, settings)
    assert apis.count() == 1
    assert second.source == "nasa_power" and second.detail == first.detail
    assert (second.latitude, second.longitude) == (first.latitude, first.longitude)
    pd.testing.assert_frame_equal(second.data, first.data, check_freq=False)


def test_cache_key_rounds_to_tenth_degree(tmp_path, apis):
    assert ir.cache_key(-19.92, -43.94, "nasa_power") == ir.cache_key(-19.94, -43.86, "nasa_power")
    assert ir.cache_key(-19.92, -43.94, "nasa_power") == "nasa_power_lat-19.9_lon-43.9"
    assert ir.cache_key(-19.92, -43.94, "pvgis") != ir.cache_key(-19.92, -43.94, "nasa_power")
    assert ir.cache_key(-19.96, -43.94, "nasa_power") == "nasa_power_lat-20.0_lon-43.9"
    assert ir.round_coordinate(-19.95) == -20.0 and ir.round_coordinate(-0.04) == 0.0
    assert str(ir.round_coordinate(-0.04)) == "0.0"

    settings = make_settings(tmp_path, apis)
    ir.get_irradiance(-19.92, -43.94, settings)
    hit = ir.get_irradiance(-19.94, -43.91, settings)
    assert apis.count() == 1
    assert (hit.latitude, hit.longitude) == (-19.9, -43.9)


def test_offline_serves_cache(tmp_path, apis):
    ir.get_irradiance(*BH, make_settings(tmp_path, apis))
    assert apis.count() == 1
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_offline=True))
    assert year.source == "nasa_power"
    assert apis.count() == 1


def test_offline_without_cache_is_modelled(tmp_path, apis):
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis, irradiance_offline=True))
    assert year.source == "modelled"
    assert "offline" in year.detail
    assert apis.count() == 0
    assert_year_frame(year)


def test_atomic_cache_write_leaves_no_partial_file(tmp_path, apis, monkeypatch, caplog):
    def broken_write_table(table, where, *args, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(ir.pq, "write_table", broken_write_table)
    cache = tmp_path / "cache"
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis))
    assert year.source == "nasa_power"  # a failed cache write does not fail the lookup
    assert "could not cache" in caplog.text
    assert list(cache.iterdir()) == []  # neither the final file nor the temporary one

    with pytest.raises(OSError, match="No space left"):
        ir.write_cached(cache, year)
    assert list(cache.iterdir()) == []

    monkeypatch.undo()
    path = ir.write_cached(cache, year)
    assert [p.name for p in cache.iterdir()] == [path.name]
    assert ir.read_cached(cache, *BH, "nasa_power") is not None


def test_corrupt_cache_file_is_ignored_and_replaced(tmp_path, apis):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "nasa_power_lat-19.9_lon-43.9.parquet").write_bytes(b"not parquet")
    year = ir.get_irradiance(*BH, make_settings(tmp_path, apis))
    assert year.source == "nasa_power" and apis.count() == 1
    assert ir.read_cached(cache, *BH, "nasa_power") is not None


# --- validation and the modelled year -----------------------------------------------------------

@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [
        (40.7, -74.0, "latitude"),      # New York
        (-35.0, -50.0, "latitude"),
        (-19.92, 43.94, "longitude"),   # sign forgotten
        (-19.92, -80.0, "longitude"),
        (float("nan"), -43.94, "latitude"),
        ("abc", -43.94, "latitude"),
        (-19.92, None, "longitude"),
        (True, -43.94, "latitude"),
    ],
)
def test_coordinates_validated(tmp_path, lat, lon, field):
    settings = make_settings(tmp_path, None, irradiance_offline=True)
    with pytest.raises(ValueError, match=field):
        ir.get_irradiance(lat, lon, settings)


def test_coordinate_bounds_are_inclusive():
    assert ir.validate_coordinates(-34, -74) == (-34.0, -74.0)
    assert ir.validate_coordinates("5.2", "-60.1") == (5.2, -60.1)


def test_modelled_year_shape_and_assumptions():
    year = ir.modelled_year(*BH)
    assert year.source == "modelled"
    assert (year.latitude, year.longitude) == (-19.9, -43.9)
    assert_year_frame(year)
    df = year.data
    assert (df["temp_air"] == ir.MODELLED_TEMP_AIR_C).all()
    assert (df["wind_speed"] == ir.MODELLED_WIND_SPEED_MS).all()
    # Erbs split is consistent: GHI ≈ DNI·cos(z) + DHI wherever the sun is up
    import pvlib

    mid = df.index + pd.Timedelta(minutes=30)
    zen = pvlib.solarposition.get_solarposition(mid, year.latitude, year.longitude)["zenith"].to_numpy()
    day = zen < 85
    recon = df["dni"].to_numpy()[day] * np.cos(np.radians(zen[day])) + df["dhi"].to_numpy()[day]
    np.testing.assert_allclose(recon, df["ghi"].to_numpy()[day], rtol=0.02, atol=2.0)
    # about 5 kWh/m²/day for Belo Horizonte (measured: ~5.4)
    assert 4.6 < year.annual_ghi_kwh_m2 / 365 < 5.8
    # winter (June) has less sun than summer (January) at 20° S
    monthly = df["ghi"].groupby(df.index.month).mean()
    assert monthly[6] < monthly[1]


@pytest.fixture(autouse=True)
def _forget_unreachable_sources():
    ir._unreachable_until.clear()
    yield
    ir._unreachable_until.clear()


def test_an_unreachable_source_is_skipped_for_a_while(tmp_path, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/api"
    settings = Settings(irradiance_cache_dir=tmp_path, irradiance_sources=["nasa_power"], nasa_power_url=closed,
                        irradiance_retries=1, irradiance_timeout_s=2)
    caplog.set_level(logging.INFO, logger="ysh.proposals.irradiance")
    first = ir.get_irradiance(-19.92, -43.94, settings)
    assert first.source == "modelled" and "ConnectionError" in first.detail
    second = ir.get_irradiance(-23.55, -46.63, settings)  # another site: the source is not asked again
    assert second.source == "modelled" and "skipped, unreachable" in second.detail


def test_the_modelled_year_is_computed_once_per_site_and_read_back_from_disk(tmp_path, monkeypatch):
    settings = Settings(irradiance_offline=True, irradiance_cache_dir=tmp_path / "cache", home=tmp_path)
    ir.clear_modelled_cache()
    first = ir.get_irradiance(*BH, settings)
    assert first.source == "modelled"
    (cached,) = (tmp_path / "cache" / "modelled").glob("*.parquet")
    assert cached.name.startswith("modelled_lat-19.9_lon-43.9_") and ir.MODELLED_FINGERPRINT in cached.name
    again = ir.get_irradiance(*BH, settings)
    assert again.data is first.data  # the same frame: the yield cache's fingerprint is computed once

    ir.clear_modelled_cache()  # as in a new process: from disk, not modelled again

    def must_not_run(*args):
        raise AssertionError("the modelled year was computed again instead of read from the disk cache")

    monkeypatch.setattr(ir, "_model_frame", must_not_run)
    from_disk = ir.get_irradiance(*BH, settings)
    assert from_disk.source == "modelled" and from_disk.detail == first.detail
    pd.testing.assert_frame_equal(from_disk.data, first.data, check_freq=False)
    # the modelled folder is not a measured source: an online source's cache would still win
    assert not list((tmp_path / "cache").glob("*.parquet"))


def test_a_corrupt_modelled_year_on_disk_is_modelled_again(tmp_path):
    settings = Settings(irradiance_offline=True, irradiance_cache_dir=tmp_path / "cache", home=tmp_path)
    ir.clear_modelled_cache()
    first = ir.get_irradiance(*BH, settings)
    (cached,) = (tmp_path / "cache" / "modelled").glob("*.parquet")
    cached.write_bytes(b"PAR1 not a table")
    ir.clear_modelled_cache()
    again = ir.get_irradiance(*BH, settings)
    pd.testing.assert_frame_equal(again.data, first.data, check_freq=False)


@pytest.mark.parametrize("change", ["modelling code", "pvlib release"])
def test_a_new_model_version_or_pvlib_misses_the_modelled_cache(tmp_path, monkeypatch, change):
    """The modelled year cached on disk by one version of the modelling code (or of pvlib)
    is not served to another: the year is modelled again and cached under a new key."""
    settings = Settings(irradiance_offline=True, irradiance_cache_dir=tmp_path / "cache", home=tmp_path)
    ir.clear_modelled_cache()
    ir.get_irradiance(*BH, settings)
    (old,) = (tmp_path / "cache" / "modelled").glob("*.parquet")

    if change == "modelling code":
        monkeypatch.setattr(ir, "MODELLED_VERSION", ir.MODELLED_VERSION + 1)
    else:
        monkeypatch.setattr(ir.pvlib, "__version__", ir.pvlib.__version__ + ".post-test")
    ir.clear_modelled_cache()  # as in a new process with the new code
    modelled = []
    model = ir._model_frame
    monkeypatch.setattr(ir, "_model_frame", lambda lat, lon: modelled.append((lat, lon)) or model(lat, lon))
    year = ir.get_irradiance(*BH, settings)
    assert year.source == "modelled"
    assert modelled == [(ir.round_coordinate(BH[0]), ir.round_coordinate(BH[1]))]  # a miss: modelled again
    new = set((tmp_path / "cache" / "modelled").glob("*.parquet")) - {old}
    assert len(new) == 1 and new.pop().name.split("_")[-1] != old.name.split("_")[-1]

    ir.clear_modelled_cache()  # the same version again: a hit, nothing modelled
    ir.get_irradiance(*BH, settings)
    assert len(modelled) == 1
    ir.clear_modelled_cache()
