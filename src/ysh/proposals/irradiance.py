"""Hourly irradiance and weather for one year at a Brazilian site (proposals job).

One file on purpose: it is one resolution order (cache, then each online source, then the
modelled year) over one frame shape; the cache, the two sources and the model share its
constants, validation and retry rules, which read best beside the order that uses them.

:func:`get_irradiance` returns an :class:`IrradianceYear`: 8760 hourly rows, tz-aware UTC
index, columns ``ghi, dni, dhi`` (W/m²), ``temp_air`` (°C) and ``wind_speed`` (m/s).

Conventions
-----------
* Each row is labelled with the **start** of its hour and holds the mean over that hour
  (NASA POWER's convention, see :func:`pvlib.iotools.get_nasa_power`). Consumers that
  need solar geometry should use the middle of the hour (index + 30 min).
  PVGIS TMY values are nominally at HH:00 + a few minutes (``irradiance_time_offset``,
  satellite scan time); they are filed under HH:00 — a skew of ~10 min that is negligible
  for monthly energy.
* Coordinates are rounded to 0.1° (≈11 km, finer than either source's grid: NASA POWER
  0.5°×0.625°, PVGIS-SARAH ~0.05° but with smooth fields) before anything is requested;
  the rounded pair plus the source is the cache key.

Order of resolution
-------------------
1. On-disk cache (``settings.proposals.irradiance.cache_dir``): one parquet file per
   ``(source, rounded lat, rounded lon)``, sources checked in ``settings.proposals.irradiance.sources``
   order. Written atomically (temp file + ``os.replace``).
2. Unless ``settings.proposals.irradiance.offline``: each online source in that order, with
   ``YSH_IRRADIANCE_TIMEOUT_S`` per request and ``YSH_IRRADIANCE_RETRIES`` retries (exponential
   backoff) on connection errors, timeouts, HTTP 5xx and 429. Other 4xx, and responses
   that cannot be parsed, fail the source at once.
3. Otherwise the *modelled year* (:func:`modelled_year`). It is deterministic (the site and
   the model's constants), so it is computed once per site: kept in memory for the process
   and, with ``cache_dir``, on disk under ``cache_dir / "modelled"`` keyed by the model's
   fingerprint (:data:`MODELLED_FINGERPRINT`: :data:`MODELLED_VERSION` of the modelling
   code, its constants and pvlib's version; a change of any is a cache miss); that folder is never read as measured data,
   so a later online run still replaces it with measured data.

HTTP is done here with :mod:`requests` (pvlib's own transport) rather than by calling
:func:`pvlib.iotools.get_nasa_power` / :func:`pvlib.iotools.get_pvgis_tmy` directly:
``get_nasa_power`` takes no timeout, and both turn HTTP errors into a bare ``HTTPError``
(message only, no status code), so a 400 could not be told from a 503. The query
parameters are the ones those functions send, and parsing reuses pvlib
(:func:`pvlib.iotools.read_pvgis_tmy`, :data:`pvlib.iotools.nasa_power.VARIABLE_MAP`,
the same steps as ``get_nasa_power``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import pvlib
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from pvlib.iotools.nasa_power import VARIABLE_MAP as NASA_POWER_VARIABLE_MAP

if TYPE_CHECKING:  # pragma: no cover
    from ysh.settings import Settings

log = logging.getLogger("ysh.proposals.irradiance")

COLUMNS: tuple[str, ...] = ("ghi", "dni", "dhi", "temp_air", "wind_speed")
IRRADIANCE_COLUMNS: tuple[str, ...] = ("ghi", "dni", "dhi")
HOURS_PER_YEAR = 8760
SOURCES: tuple[str, ...] = ("nasa_power", "pvgis", "modelled")
ONLINE_SOURCES: tuple[str, ...] = ("nasa_power", "pvgis")

# Brazil-ish bounding box (mainland plus Fernando de Noronha / Trindade are inside it).
LATITUDE_RANGE = (-34.0, 6.0)
LONGITUDE_RANGE = (-74.0, -28.0)

#: Last complete calendar year requested from NASA POWER (hourly, UTC). A non-leap year,
#: so it has exactly 8760 hours (for a leap year 29 Feb would be dropped).
NASA_POWER_YEAR = 2023
NASA_POWER_PARAMETERS: tuple[str, ...] = (
    "ALLSKY_SFC_SW_DWN", "ALLSKY_SFC_SW_DNI", "ALLSKY_SFC_SW_DIFF", "T2M", "WS10M",
)
#: Year PVGIS TMY timestamps are coerced to (pvlib's default ``coerce_year``; non-leap).
PVGIS_TMY_YEAR = 1990
#: Year of the modelled (clear-sky × clearness) series; any non-leap year would do.
MODELLED_YEAR = 2023

#: More missing hours than this (per column) fails a source instead of being interpolated.
MAX_MISSING_FRACTION = 0.02

#: First retry waits this long, then doubles (0.5 s, 1 s, 2 s, ...).
RETRY_BACKOFF_S = 0.5
USER_AGENT = "ysh-proposals (pvlib; +https://pvlib-python.readthedocs.io)"

CACHE_FORMAT_VERSION = 1
_META_KEY = b"ysh.irradiance"

# --- modelled year assumptions ---------------------------------------------------------
#: Monthly clearness factor (all-sky GHI / clear-sky GHI), January..December.
#:
#: Basis: long-term mean GHI over Brazil is roughly 4.5-6.2 kWh/m²/day (Atlas Brasileiro
#: de Energia Solar, 2nd ed., Pereira et al., INPE/LABREN 2017; e.g. ~5.4 Belo Horizonte,
#: ~4.6 São Paulo and Porto Alegre, ~5.6 Fortaleza), while the Ineichen clear sky below
#: integrates to 6.3-7.1 kWh/m²/day between 3° S and 30° S. The ratio is ~0.68-0.81, so
#: one central value, 0.75, for every month: Brazil's cloudy season is summer in the
#: Southeast/Centre-West but autumn on the northeastern coast and the first half of the
#: year in the North, so any single monthly shape would be wrong somewhere. Result:
#: Belo Horizonte, tilt 20° north, 14 % losses → ~1,490 kWh/kWp/year (measured-data
#: yields in Brazil: ~1,350-1,550). Cloudier sites (São Paulo, the South) come out ~10 %
#: high, sunnier ones (semi-arid Northeast) a little low.
MONTHLY_CLEARNESS: tuple[float, ...] = (0.75,) * 12
#: Air temperature of the modelled year (°C): a round annual daytime value for most of
#: Brazil's populated area (INMET normals: annual means 18-27 °C, daytime higher).
MODELLED_TEMP_AIR_C = 25.0
#: Wind speed of the modelled year (m/s): a low, conservative value (warmer cells).
MODELLED_WIND_SPEED_MS = 1.0


class SourceError(RuntimeError):
    """An online irradiance source could not deliver a usable year."""


class SourceUnreachable(SourceError):
    """The source did not answer at all (connection refused, DNS, timeouts) after retries."""


#: After a source is unreachable, skip it for this long in this process: a batch of
#: hundreds of quotes must not wait timeout × retries for every site while it is down.
UNREACHABLE_SKIP_S = 300.0
_unreachable_until: dict[str, float] = {}


@dataclass(frozen=True, eq=False)
class IrradianceYear:
    """One year of hourly weather at a site.

    ``latitude``/``longitude`` are the rounded (0.1°) coordinates used for the request and
    as cache key. ``data``: 8760 rows, UTC index (start of each hour), :data:`COLUMNS`.
    """

    source: str
    latitude: float
    longitude: float
    data: pd.DataFrame
    detail: str

    @property
    def annual_ghi_kwh_m2(self) -> float:
        return float(self.data["ghi"].sum()) / 1000.0


# --- coordinates and cache key -----------------------------------------------------------

def finite_number(value: object, field: str, what: str = "a number") -> float:
    """``value`` as a finite float; ValueError naming ``field`` otherwise (booleans too)."""
    if isinstance(value, bool):
        raise ValueError(f"{field} must be {what}, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be {what}, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{field} must be finite, got {value!r}")
    return number


def _as_finite_float(value: object, field: str) -> float:
    return finite_number(value, field, "a number in degrees")


def validate_coordinates(latitude: object, longitude: object) -> tuple[float, float]:
    """Check that the site is in (or right around) Brazil; return the floats.

    Raises ``ValueError`` naming ``latitude`` or ``longitude``.
    """
    lat = _as_finite_float(latitude, "latitude")
    lon = _as_finite_float(longitude, "longitude")
    lo, hi = LATITUDE_RANGE
    if not lo <= lat <= hi:
        raise ValueError(
            f"latitude {lat} is outside Brazil ({lo}..{hi}; south is negative, e.g. -19.92)"
        )
    lo, hi = LONGITUDE_RANGE
    if not lo <= lon <= hi:
        raise ValueError(
            f"longitude {lon} is outside Brazil ({lo}..{hi}; west is negative, e.g. -43.94)"
        )
    return lat, lon


def round_coordinate(value: float) -> float:
    """Round to 0.1°, half away from zero on the decimal value (−19.95 → −20.0)."""
    rounded = float(Decimal(repr(float(value))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    return rounded + 0.0  # no "-0.0"


def cache_key(latitude: float, longitude: float, source: str) -> str:
    """File stem of the cache entry, e.g. ``nasa_power_lat-19.9_lon-43.9``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    lat, lon = round_coordinate(latitude), round_coordinate(longitude)
    return f"{source}_lat{lat:.1f}_lon{lon:.1f}"


def cache_path(cache_dir: Path, latitude: float, longitude: float, source: str) -> Path:
    return Path(cache_dir) / f"{cache_key(latitude, longitude, source)}.parquet"


# --- cache I/O ---------------------------------------------------------------------------

def write_cached(cache_dir: Path, year: IrradianceYear) -> Path:
    """Write ``year`` to its cache file atomically; return the path.

    The table goes to a temporary file in the same folder, is fsynced, then renamed over
    the final name, so readers see either the old file, the new one, or none — never a
    partial file. On any error the temporary file is removed and the error re-raised.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_path(cache_dir, year.latitude, year.longitude, year.source)
    meta = {
        "format": CACHE_FORMAT_VERSION, "source": year.source, "latitude": year.latitude,
        "longitude": year.longitude, "detail": year.detail,
    }
    table = pa.Table.from_pandas(year.data[list(COLUMNS)], preserve_index=True)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()}
    )
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{final.stem}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def read_cached(cache_dir: Path, latitude: float, longitude: float, source: str) -> IrradianceYear | None:
    """The cached year, or ``None`` when absent or unreadable (logged, then ignored)."""
    path = cache_path(cache_dir, latitude, longitude, source)
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        if meta.get("format") != CACHE_FORMAT_VERSION or meta.get("source") != source:
            raise ValueError(f"unexpected cache metadata {meta!r}")
        data = table.to_pandas()
        _check_year_frame(data)
    except Exception as exc:  # corrupt / foreign / old file: refetch instead of failing
        log.warning("ignoring unreadable irradiance cache %s: %s", path, exc)
        return None
    return IrradianceYear(source=source, latitude=float(meta["latitude"]),
                          longitude=float(meta["longitude"]), data=data, detail=str(meta["detail"]))


def _check_year_frame(data: pd.DataFrame) -> None:
    if list(data.columns) != list(COLUMNS):
        raise ValueError(f"columns {list(data.columns)} != {list(COLUMNS)}")
    if len(data) != HOURS_PER_YEAR:
        raise ValueError(f"{len(data)} rows, expected {HOURS_PER_YEAR}")
    if not isinstance(data.index, pd.DatetimeIndex) or str(data.index.tz) != "UTC":
        raise ValueError("index is not a UTC DatetimeIndex")
    if data.isna().any().any():
        raise ValueError("missing values")


# --- normalising parsed source data ------------------------------------------------------

def _to_year_frame(df: pd.DataFrame, year: int, what: str) -> tuple[pd.DataFrame, int]:
    """Select :data:`COLUMNS`, put on a full hourly UTC grid of ``year`` (8760 rows, no
    29 Feb), fill short gaps. Returns the frame and the number of filled cells."""
    missing_cols = [c for c in COLUMNS if c not in df.columns]
    if missing_cols:
        raise SourceError(f"{what}: response lacks {missing_cols}")
    df = df[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").astype("float64")
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise SourceError(f"{what}: timestamps are not tz-aware")
    idx = idx.tz_convert("UTC").floor("h")
    df.index = idx
    df = df[~df.index.duplicated(keep="first")].sort_index()
    grid = pd.date_range(f"{year}-01-01", f"{year}-12-31 23:00", freq="h", tz="UTC")
    grid = grid[~((grid.month == 2) & (grid.day == 29))]
    df = df.reindex(grid)
    df.index.name = "time"
    n_missing = int(df.isna().sum().sum())
    worst = df.isna().mean().max()
    if worst > MAX_MISSING_FRACTION:
        raise SourceError(
            f"{what}: {worst:.1%} of hours missing in at least one column (limit {MAX_MISSING_FRACTION:.0%})"
        )
    if n_missing:
        df = df.interpolate(method="linear", limit_direction="both")
    df[list(IRRADIANCE_COLUMNS)] = df[list(IRRADIANCE_COLUMNS)].clip(lower=0.0)
    df["wind_speed"] = df["wind_speed"].clip(lower=0.0)
    return df, n_missing


# --- HTTP -------------------------------------------------------------------------------

def _error_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(body, dict):
        for key in ("message", "messages", "detail", "errors"):
            if key in body:
                return str(body[key])[:300]
    return str(body)[:300]


def _retryable(status: int) -> bool:
    """5xx and 429 (rate limited) are worth another try; any other 4xx is not."""
    return status >= 500 or status == 429


def _http_get(session: requests.Session, url: str, params: dict, *, timeout: float,
              retries: int, what: str) -> requests.Response:
    """GET with retries on connection errors, timeouts, 5xx and 429; return a 2xx response."""
    attempts = retries + 1
    last: str = "no attempt"
    unreachable = False
    for attempt in range(1, attempts + 1):
        try:
            resp = session.get(url, params=params, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            unreachable = True
        else:
            unreachable = False
            if resp.ok:
                return resp
            if not _retryable(resp.status_code):
                raise SourceError(f"{what}: HTTP {resp.status_code} (not retried): {_error_text(resp)}")
            last = f"HTTP {resp.status_code}: {_error_text(resp)}"
        if attempt < attempts:
            delay = RETRY_BACKOFF_S * 2 ** (attempt - 1)
            log.info("%s: attempt %d/%d failed (%s); retrying in %.1f s", what, attempt, attempts, last, delay)
            time.sleep(delay)
    error = SourceUnreachable if unreachable else SourceError
    raise error(f"{what}: failed after {attempts} attempt(s): {last}")


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


# --- NASA POWER ---------------------------------------------------------------------------

def nasa_power_params(latitude: float, longitude: float, year: int = NASA_POWER_YEAR) -> dict:
    """Query string of :func:`pvlib.iotools.get_nasa_power` for one calendar year, UTC."""
    return {
        "latitude": latitude, "longitude": longitude,
        "start": f"{year}0101", "end": f"{year}1231",
        "community": "re", "parameters": ",".join(NASA_POWER_PARAMETERS),
        "format": "json", "header": True, "time-standard": "utc",
    }


def parse_nasa_power(payload: dict, year: int = NASA_POWER_YEAR) -> tuple[pd.DataFrame, str]:
    """Hourly NASA POWER JSON → (year frame, detail). Same steps as ``get_nasa_power``."""
    what = "nasa_power"
    try:
        header = payload["header"]
        standard = str(header.get("time_standard", "UTC")).upper()
        if standard != "UTC":
            raise SourceError(f"{what}: time_standard is {standard}, expected UTC")
        df = pd.DataFrame(payload["properties"]["parameter"])
        df.index = pd.to_datetime(df.index, format="%Y%m%d%H").tz_localize("UTC")
        df = df.replace(header["fill_value"], np.nan).rename(columns=NASA_POWER_VARIABLE_MAP)
        sources = "/".join(header.get("sources", [])) or "unknown"
    except SourceError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceError(f"{what}: unexpected response shape ({type(exc).__name__}: {exc})") from exc
    df, filled = _to_year_frame(df, year, what)
    detail = f"NASA POWER hourly {year} (UTC; {sources})"
    if filled:
        detail += f"; {filled} missing value(s) interpolated"
    return df, detail


def fetch_nasa_power(session: requests.Session, latitude: float, longitude: float, *,
                     url: str, timeout: float, retries: int) -> IrradianceYear:
    resp = _http_get(session, url, nasa_power_params(latitude, longitude),
                     timeout=timeout, retries=retries, what="nasa_power")
    try:
        payload = resp.json()
    except ValueError as exc:
        raise SourceError(f"nasa_power: response is not JSON ({exc})") from exc
    data, detail = parse_nasa_power(payload)
    return IrradianceYear("nasa_power", latitude, longitude, data, detail)


# --- PVGIS ----------------------------------------------------------------------------------

def pvgis_params(latitude: float, longitude: float) -> dict:
    """Query string of :func:`pvlib.iotools.get_pvgis_tmy` (JSON, horizon on)."""
    return {"lat": latitude, "lon": longitude, "outputformat": "json"}


def parse_pvgis_tmy(text: str, year: int = PVGIS_TMY_YEAR) -> tuple[pd.DataFrame, str]:
    """PVGIS TMY JSON text → (year frame with timestamps coerced to ``year``, detail)."""
    what = "pvgis"
    try:
        data, meta = pvlib.iotools.read_pvgis_tmy(io.StringIO(text), pvgis_format="json",
                                                  map_variables=True)
        # coerce_year as get_pvgis_tmy does (roll_utc_offset=None: timestamps stay UTC)
        data.index = pd.DatetimeIndex([ts.replace(year=year) for ts in data.index])
        meteo = meta.get("inputs", {}).get("meteo_data", {})
        months = ",".join(str(m["year"]) for m in meta.get("months_selected", []))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceError(f"{what}: unexpected response shape ({type(exc).__name__}: {exc})") from exc
    df, filled = _to_year_frame(data, year, what)
    detail = (f"PVGIS TMY {meteo.get('radiation_db', '?')}/{meteo.get('meteo_db', '?')} "
              f"{meteo.get('year_min', '?')}-{meteo.get('year_max', '?')}, "
              f"months from {months or '?'}; coerced to {year}")
    if filled:
        detail += f"; {filled} missing value(s) interpolated"
    return df, detail


def fetch_pvgis(session: requests.Session, latitude: float, longitude: float, *,
                url: str, timeout: float, retries: int) -> IrradianceYear:
    base = url if url.endswith("/") else url + "/"
    resp = _http_get(session, base + "tmy", pvgis_params(latitude, longitude),
                     timeout=timeout, retries=retries, what="pvgis")
    data, detail = parse_pvgis_tmy(resp.text)
    return IrradianceYear("pvgis", latitude, longitude, data, detail)


# --- modelled year ----------------------------------------------------------------------------

#: Version of the modelling code (:func:`_model_frame`): raise it with any change to how
#: the modelled year is computed (a model, a decomposition, a time convention) that the
#: constants below do not capture, so that years cached on disk by the old code are not
#: served (it is part of :data:`MODELLED_FINGERPRINT`, the modelled cache's key).
MODELLED_VERSION = 1


def _modelled_fingerprint() -> str:
    """The modelled cache's key besides the site: a hash of :data:`MODELLED_VERSION`, the
    model's constants, pvlib's version and the cache format, as they stand now."""
    import hashlib

    parts = (MODELLED_VERSION, MODELLED_YEAR, MONTHLY_CLEARNESS, MODELLED_TEMP_AIR_C, MODELLED_WIND_SPEED_MS,
             pvlib.__version__, CACHE_FORMAT_VERSION)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


#: what makes two modelled years equal besides the site: a changed model version,
#: constant or pvlib release is a new key, so an old cached model is never served
MODELLED_FINGERPRINT = _modelled_fingerprint()
#: (rounded latitude, rounded longitude) → the modelled hourly frame, for this process
_modelled_frames: dict[tuple[float, float], pd.DataFrame] = {}


def _modelled_path(cache_dir: Path, latitude: float, longitude: float) -> Path:
    """The disk cache file of a rounded site's modelled year; its name carries the
    fingerprint computed now (:func:`_modelled_fingerprint`; a few microseconds, and only
    on a miss of the in-memory cache)."""
    return (Path(cache_dir) / "modelled"
            / f"{cache_key(latitude, longitude, 'modelled')}_{_modelled_fingerprint()}.parquet")


def _modelled_frame(lat: float, lon: float, cache_dir: Path | None) -> pd.DataFrame:
    """The modelled frame of a rounded site: memory, then the disk cache, then the model
    (written to the disk cache when ``cache_dir`` is given). The frame is shared between
    calls: callers must not modify it."""
    frame = _modelled_frames.get((lat, lon))
    if frame is not None:
        return frame
    path = _modelled_path(cache_dir, lat, lon) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            frame = pq.read_table(path).to_pandas()
            _check_year_frame(frame)
        except Exception as exc:  # corrupt or foreign: model it again
            log.warning("ignoring unreadable modelled-year cache %s: %s", path, exc)
            frame = None
    if frame is None:
        frame = _model_frame(lat, lon)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
                os.close(fd)
                try:
                    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), tmp_name)
                    os.replace(tmp_name, path)
                except BaseException:
                    Path(tmp_name).unlink(missing_ok=True)
                    raise
            except (OSError, pa.ArrowException) as exc:
                log.warning("could not cache the modelled year %s: %s", path, exc)
    _modelled_frames[(lat, lon)] = frame
    return frame


def clear_modelled_cache() -> None:
    """Forget the modelled years kept in memory (as in a new process)."""
    _modelled_frames.clear()


def modelled_year(latitude: float, longitude: float, *, reason: str = "",
                  cache_dir: Path | None = None) -> IrradianceYear:
    """A synthetic year from clear-sky irradiance, for when no measured data is available.

    * Clear sky: pvlib Ineichen-Perez (:meth:`pvlib.location.Location.get_clearsky`) with
      the monthly Linke turbidity climatology (:func:`pvlib.clearsky.lookup_linke_turbidity`)
      and the site altitude from pvlib's altitude map, evaluated at the middle of each hour.
    * Clouds: GHI × :data:`MONTHLY_CLEARNESS` (0.75 in every month; basis in its comment:
      Brazilian all-sky GHI is ~70-80 % of clear-sky GHI).
    * DNI/DHI: Erbs decomposition (:func:`pvlib.irradiance.erbs`) of the derated GHI.
    * ``temp_air`` = :data:`MODELLED_TEMP_AIR_C` (25 °C), ``wind_speed`` =
      :data:`MODELLED_WIND_SPEED_MS` (1 m/s), constant.

    It has no day-to-day weather, so it is right on annual/monthly energy to within roughly
    ±10 % for most of Brazil, not on hourly values.
    """
    lat, lon = validate_coordinates(latitude, longitude)
    lat, lon = round_coordinate(lat), round_coordinate(lon)
    data = _modelled_frame(lat, lon, cache_dir)
    factors = sorted(set(MONTHLY_CLEARNESS))
    factor_text = f"{factors[0]:g}" if len(factors) == 1 else "monthly " + "/".join(f"{f:g}" for f in MONTHLY_CLEARNESS)
    detail = (f"modelled year (no measured data): Ineichen clear-sky with Linke climatology × "
              f"clearness {factor_text}, Erbs DNI/DHI, temp_air {MODELLED_TEMP_AIR_C:g} °C, "
              f"wind {MODELLED_WIND_SPEED_MS:g} m/s")
    if reason:
        detail += f"; reason: {reason}"
    return IrradianceYear("modelled", lat, lon, data, detail)


def _model_frame(lat: float, lon: float) -> pd.DataFrame:
    """The modelled hourly frame of a rounded site (:func:`modelled_year`, uncached)."""
    if len(MONTHLY_CLEARNESS) != 12:
        raise ValueError("MONTHLY_CLEARNESS must have 12 values")
    index = pd.date_range(f"{MODELLED_YEAR}-01-01", periods=HOURS_PER_YEAR, freq="h", tz="UTC",
                          name="time")
    mid = index + pd.Timedelta(minutes=30)
    location = pvlib.location.Location(lat, lon, tz="UTC")
    linke = pvlib.clearsky.lookup_linke_turbidity(mid, lat, lon)
    clear = location.get_clearsky(mid, model="ineichen", linke_turbidity=linke)
    solpos = location.get_solarposition(mid)
    clearness = np.asarray(MONTHLY_CLEARNESS, dtype=float)[mid.month.to_numpy() - 1]
    ghi = clear["ghi"].to_numpy() * clearness
    split = pvlib.irradiance.erbs(pd.Series(ghi, index=mid), solpos["zenith"], mid)
    data = pd.DataFrame(
        {
            "ghi": ghi,
            "dni": np.asarray(split["dni"], dtype=float),
            "dhi": np.asarray(split["dhi"], dtype=float),
            "temp_air": MODELLED_TEMP_AIR_C,
            "wind_speed": MODELLED_WIND_SPEED_MS,
        },
        index=index,
    )
    data = data.fillna(0.0)
    data[list(IRRADIANCE_COLUMNS)] = data[list(IRRADIANCE_COLUMNS)].clip(lower=0.0)
    return data


# --- entry point ---------------------------------------------------------------------------------

Fetcher = Callable[..., IrradianceYear]
FETCHERS: dict[str, Fetcher] = {"nasa_power": fetch_nasa_power, "pvgis": fetch_pvgis}


def _source_url(settings: "Settings", source: str) -> str:
    return {"nasa_power": settings.proposals.irradiance.nasa_power_url, "pvgis": settings.proposals.irradiance.pvgis_url}[source]


def get_irradiance(latitude: float, longitude: float, settings: "Settings") -> IrradianceYear:
    """One hourly year at the site: cache, then online sources, then the modelled year.

    Uses ``settings.proposals.irradiance``: ``cache_dir``, ``offline``, ``sources``,
    ``timeout_s``, ``retries``, ``nasa_power_url``, ``pvgis_url``.
    Raises ``ValueError`` (naming the field) for coordinates outside Brazil; never raises
    for network trouble (falls back to the modelled year and logs why).
    """
    lat, lon = validate_coordinates(latitude, longitude)
    lat, lon = round_coordinate(lat), round_coordinate(lon)
    cache_dir = settings.proposals.irradiance.cache_dir
    sources = [s for s in dict.fromkeys(settings.proposals.irradiance.sources) if s in ONLINE_SOURCES]

    for source in sources:
        cached = read_cached(cache_dir, lat, lon, source)
        if cached is not None:
            log.info("irradiance (%s, %s): %s from cache %s", lat, lon, source,
                     cache_path(cache_dir, lat, lon, source))
            return cached

    if settings.proposals.irradiance.offline:
        reason = f"offline and no cached {'/'.join(sources) or 'online'} data"
        log.info("irradiance (%s, %s): modelled year (%s)", lat, lon, reason)
        return modelled_year(lat, lon, reason=reason, cache_dir=cache_dir)
    if not sources:
        reason = "no online source configured"
        log.warning("irradiance (%s, %s): modelled year (%s)", lat, lon, reason)
        return modelled_year(lat, lon, reason=reason, cache_dir=cache_dir)

    failures: list[str] = []
    with _new_session() as session:
        for source in sources:
            if _unreachable_until.get(source, 0.0) > time.monotonic():
                failures.append(f"{source}: skipped, unreachable within the last {UNREACHABLE_SKIP_S:.0f} s")
                continue
            try:
                year = FETCHERS[source](
                    session, lat, lon, url=_source_url(settings, source),
                    timeout=settings.proposals.irradiance.timeout_s, retries=settings.proposals.irradiance.retries,
                )
            except SourceError as exc:
                log.warning("irradiance (%s, %s): source %s failed: %s", lat, lon, source, exc)
                failures.append(str(exc))
                if isinstance(exc, SourceUnreachable):
                    _unreachable_until[source] = time.monotonic() + UNREACHABLE_SKIP_S
                continue
            try:
                write_cached(cache_dir, year)
            except (OSError, pa.ArrowException) as exc:
                log.warning("irradiance (%s, %s): could not cache %s data: %s", lat, lon, source, exc)
            if failures:
                log.info("irradiance (%s, %s): using %s after failures: %s", lat, lon, source,
                         "; ".join(failures))
            else:
                log.info("irradiance (%s, %s): using %s (%s)", lat, lon, source, year.detail)
            return year

    reason = "all online sources failed: " + "; ".join(failures)
    log.warning("irradiance (%s, %s): modelled year (%s)", lat, lon, reason)
    return modelled_year(lat, lon, reason=reason, cache_dir=cache_dir)


def sources_reachable(settings: "Settings", timeout: float = 3.0) -> list[str]:
    """The configured online sources whose host accepts a TCP connection within
    ``timeout`` (a cheap check before a long batch; the fetch itself may still fail)."""
    import socket
    from urllib.parse import urlsplit

    reachable = []
    for source in settings.proposals.irradiance.sources:
        parts = urlsplit(_source_url(settings, source))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                reachable.append(source)
        except OSError:
            continue
    return reachable
