"""The monitored PV fleet: plants and their inverters (``PLANTS.json``).

A plants file is a JSON list of objects::

    {"plant_id": "plant-bh-01", "capacity_kwp": 8.25, "latitude": -19.92,
     "longitude": -43.94, "tilt_deg": 20, "azimuth_deg": 0,
     "inverters": [{"inverter_id": "inv-01", "rated_power_w": 6000}]}

* ``capacity_kwp``: DC (module nameplate) capacity of the whole plant.
* ``latitude`` / ``longitude``: decimal degrees, limited to Brazil's bounding box
  (−34..6, −74..−28).
* ``azimuth_deg``: clockwise from north (pvlib convention): 0 = north-facing, which is
  the best orientation in Brazil (south of the equator), 90 = east, 180 = south.
* ``inverters``: at least one, unique ``inverter_id`` within the plant; ``rated_power_w``
  is the inverter's AC rating. The plant's DC/AC ratio (``capacity_kwp`` over the sum of
  the ratings) must lie in [:data:`DC_AC_MIN`, :data:`DC_AC_MAX`].
* Optional: ``name`` (free text, e.g. the city) and ``poa_sensor`` (the plant has a
  plane-of-array irradiance sensor; its reading then appears in the telemetry).
* Optional per inverter: ``report_interval_s``, how often its logger reports (e.g. 900
  for the 15-minute loggers common in Brazilian fleets). Its windows are then that long
  (rounded up to whole 5 minutes: :attr:`Inverter.window_s`); without it the windows are
  5 minutes and the rules infer the interval from the data.

:func:`load_plants` raises :class:`PlantsFileError` naming the plant (index and id) and
the field; :func:`dump_plants` writes the same format back. :func:`sample_plants` is the
six-plant sample fleet stored in ``data/sample/om/plants.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "DC_AC_MAX",
    "DC_AC_MIN",
    "Inverter",
    "Plant",
    "PlantsFileError",
    "dump_plants",
    "load_plants",
    "parse_plants",
    "sample_plants",
]

DC_AC_MIN = 0.8
DC_AC_MAX = 1.6
#: the telemetry window (s); an inverter reporting less often gets longer windows
WINDOW_S = 300


class Inverter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inverter_id: str = Field(min_length=1, max_length=64)
    rated_power_w: float = Field(gt=0, allow_inf_nan=False)
    report_interval_s: int | None = Field(default=None, gt=0, le=3600)

    @property
    def rated_power_kw(self) -> float:
        return self.rated_power_w / 1000.0

    @property
    def window_s(self) -> int:
        """The length of its telemetry windows: 5 minutes, or its reporting interval
        rounded up to whole 5 minutes when that is longer."""
        base = WINDOW_S
        if self.report_interval_s is None or self.report_interval_s <= base:
            return base
        return -(-self.report_interval_s // base) * base


class Plant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plant_id: str = Field(min_length=1, max_length=64)
    capacity_kwp: float = Field(gt=0, allow_inf_nan=False)
    latitude: float = Field(ge=-34.0, le=6.0, allow_inf_nan=False)
    longitude: float = Field(ge=-74.0, le=-28.0, allow_inf_nan=False)
    tilt_deg: float = Field(ge=0.0, le=90.0, allow_inf_nan=False)
    azimuth_deg: float = Field(ge=0.0, lt=360.0, allow_inf_nan=False)
    inverters: list[Inverter] = Field(min_length=1)
    name: str | None = None
    poa_sensor: bool = False

    @field_validator("plant_id")
    @classmethod
    def _strip_id(cls, value: str) -> str:
        if value != value.strip() or ":" in value:
            raise ValueError("must not contain ':' or surrounding whitespace")
        return value

    @model_validator(mode="after")
    def _check_inverters(self) -> "Plant":
        seen: set[str] = set()
        for inverter in self.inverters:
            if inverter.inverter_id in seen:
                raise ValueError(f"inverters: duplicate inverter_id {inverter.inverter_id!r}")
            if ":" in inverter.inverter_id:
                raise ValueError(f"inverters: inverter_id {inverter.inverter_id!r} must not contain ':'")
            seen.add(inverter.inverter_id)
        ratio = self.dc_ac_ratio
        if not DC_AC_MIN <= ratio <= DC_AC_MAX:
            raise ValueError(
                f"capacity_kwp: DC/AC ratio {ratio:.2f} (capacity_kwp {self.capacity_kwp:g} kWp over "
                f"{self.ac_capacity_w / 1000:g} kW of inverters) is outside the plausible range "
                f"[{DC_AC_MIN}, {DC_AC_MAX}]"
            )
        return self

    # --- helpers ------------------------------------------------------------------------

    @property
    def ac_capacity_w(self) -> float:
        """Sum of the inverters' AC ratings (W)."""
        return float(sum(inverter.rated_power_w for inverter in self.inverters))

    @property
    def dc_ac_ratio(self) -> float:
        return self.capacity_kwp * 1000.0 / self.ac_capacity_w

    @property
    def inverter_ids(self) -> list[str]:
        return [inverter.inverter_id for inverter in self.inverters]

    @property
    def dc_kw_per_inverter(self) -> dict[str, float]:
        """DC capacity (kWp) behind each inverter: the plant's kWp split pro rata to rating."""
        total = self.ac_capacity_w
        return {inv.inverter_id: self.capacity_kwp * inv.rated_power_w / total for inv in self.inverters}

    def inverter(self, inverter_id: str) -> Inverter:
        for inverter in self.inverters:
            if inverter.inverter_id == inverter_id:
                return inverter
        raise KeyError(f"plant {self.plant_id!r} has no inverter {inverter_id!r}")


class PlantsFileError(ValueError):
    """A plants file is unreadable or a plant in it is invalid.

    ``plant_index`` / ``plant_id`` / ``field`` locate the (first) problem when known."""

    def __init__(self, message: str, *, plant_index: int | None = None,
                 plant_id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.plant_index = plant_index
        self.plant_id = plant_id
        self.field = field


def _loc_text(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _plant_error(exc: ValidationError, index: int, raw: Any, source: str) -> PlantsFileError:
    plant_id = raw.get("plant_id") if isinstance(raw, dict) else None
    plant_id = plant_id if isinstance(plant_id, str) else None
    label = f"plant #{index}" + (f" ({plant_id})" if plant_id else "")
    problems = []
    first_field: str | None = None
    for error in exc.errors(include_url=False):
        loc = tuple(error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        field = _loc_text(loc)
        if not field and message.startswith("Value error, "):
            # model-level check: its message starts with the field it concerns
            message = message[len("Value error, "):]
            field = message.split(":", 1)[0] if ":" in message else ""
            message = message.split(":", 1)[1].strip() if ":" in message else message
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if first_field is None:
            first_field = field or None
        value = error.get("input")
        shown = "" if not loc or isinstance(value, (dict, list)) else f" (got {value!r})"
        problems.append(f"field {field!r}: {message}{shown}" if field else message)
    text = f"{source}: {label}: " + "; ".join(problems)
    return PlantsFileError(text, plant_index=index, plant_id=plant_id, field=first_field)


def parse_plants(data: Any, source: str = "plants") -> list[Plant]:
    """Validate a decoded plants document (a list of plant objects)."""
    if not isinstance(data, list):
        raise PlantsFileError(f"{source}: expected a JSON list of plants, got {type(data).__name__}")
    if not data:
        raise PlantsFileError(f"{source}: the plants list is empty")
    plants: list[Plant] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise PlantsFileError(f"{source}: plant #{index}: expected an object, got {type(raw).__name__}",
                                  plant_index=index)
        try:
            plant = Plant.model_validate(raw)
        except ValidationError as exc:
            raise _plant_error(exc, index, raw, source) from None
        if plant.plant_id in seen:
            raise PlantsFileError(
                f"{source}: plant #{index} ({plant.plant_id}): field 'plant_id': duplicate of plant "
                f"#{seen[plant.plant_id]}", plant_index=index, plant_id=plant.plant_id, field="plant_id")
        seen[plant.plant_id] = index
        plants.append(plant)
    return plants


def load_plants(path: str | Path) -> list[Plant]:
    """Read and validate a plants JSON file; :class:`PlantsFileError` on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows exports) is accepted
    except OSError as exc:
        raise PlantsFileError(f"{path}: cannot read plants file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PlantsFileError(f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise PlantsFileError(f"{path}: JSON nested too deeply") from None
    except ValueError as exc:  # not JSON, or an integer of more than 4,300 digits
        raise PlantsFileError(f"{path}: not valid JSON: {exc}") from None
    return parse_plants(data, source=str(path))


def plants_to_data(plants: Iterable[Plant]) -> list[dict[str, Any]]:
    return [plant.model_dump(mode="json", exclude_none=True, exclude_defaults=False) for plant in plants]


def dump_plants(plants: Iterable[Plant], path: str | Path) -> Path:
    """Write ``plants`` as a plants JSON file (UTF-8, indented, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plants_to_data(plants), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def sample_plants() -> list[Plant]:
    """The sample fleet (same content as ``data/sample/om/plants.json``).

    Two residential plants (one inverter), three commercial ones (2-4 inverters) and a
    ~500 kWp *minigeração* (6 x 75 kW), built from 550 W / 450 W modules."""

    def inverters(count: int, rated_w: float) -> list[dict]:
        return [{"inverter_id": f"inv-{i:02d}", "rated_power_w": rated_w} for i in range(1, count + 1)]

    raw = [
        {"plant_id": "plant-bh-01", "name": "Belo Horizonte - residencial", "capacity_kwp": 8.25,
         "latitude": -19.92, "longitude": -43.94, "tilt_deg": 20, "azimuth_deg": 10,
         "inverters": inverters(1, 6000)},
        {"plant_id": "plant-sp-01", "name": "São Paulo - residencial", "capacity_kwp": 5.5,
         "latitude": -23.55, "longitude": -46.63, "tilt_deg": 15, "azimuth_deg": 340,
         "inverters": inverters(1, 5000)},
        {"plant_id": "plant-cwb-01", "name": "Curitiba - comercial", "capacity_kwp": 60.5,
         "latitude": -25.43, "longitude": -49.27, "tilt_deg": 25, "azimuth_deg": 0,
         "inverters": inverters(3, 15000), "poa_sensor": True},
        {"plant_id": "plant-rj-01", "name": "Rio de Janeiro - comercial", "capacity_kwp": 50.05,
         "latitude": -22.91, "longitude": -43.17, "tilt_deg": 10, "azimuth_deg": 20,
         "inverters": inverters(2, 20000), "poa_sensor": True},
        {"plant_id": "plant-cps-01", "name": "Campinas - comercial", "capacity_kwp": 74.8,
         "latitude": -22.91, "longitude": -47.06, "tilt_deg": 22, "azimuth_deg": 0,
         "inverters": inverters(4, 15000), "poa_sensor": True},
        {"plant_id": "plant-gyn-01", "name": "Goiânia - minigeração", "capacity_kwp": 504.0,
         "latitude": -16.69, "longitude": -49.26, "tilt_deg": 15, "azimuth_deg": 0,
         "inverters": inverters(6, 75000), "poa_sensor": True},
    ]
    return parse_plants(raw, source="sample_plants")


#: (name, latitude, longitude) of the state capitals the synthetic fleet spreads around
_CITIES = (
    ("São Paulo", -23.55, -46.63), ("Rio de Janeiro", -22.91, -43.17), ("Belo Horizonte", -19.92, -43.94),
    ("Brasília", -15.79, -47.88), ("Salvador", -12.97, -38.50), ("Fortaleza", -3.73, -38.52),
    ("Recife", -8.05, -34.88), ("Porto Alegre", -30.03, -51.23), ("Curitiba", -25.43, -49.27),
    ("Goiânia", -16.68, -49.25), ("Cuiabá", -15.60, -56.10), ("Manaus", -3.12, -60.02),
    ("Belém", -1.46, -48.50), ("Campo Grande", -20.47, -54.62), ("Natal", -5.79, -35.21),
    ("Teresina", -5.09, -42.80), ("Florianópolis", -27.60, -48.55), ("Vitória", -20.32, -40.34),
)


def synthetic_plants(count: int, seed: int = 0) -> list[Plant]:
    """A plausible distributed-generation fleet of ``count`` plants for load tests: about
    70 % residential (one 3–10 kW inverter), 25 % commercial (2–4 inverters of 15–50 kW)
    and 5 % minigeração (6–10 inverters of 75–100 kW), around the state capitals, DC/AC
    1.1–1.35, facing north ± 30° at 5–25° tilt. Same seed, same fleet."""
    import numpy as np

    rng = np.random.default_rng(seed)
    plants = []
    for k in range(count):
        kind = rng.choice(3, p=[0.70, 0.25, 0.05])
        n, (lo, hi) = [(1, (3, 10)), (int(rng.integers(2, 5)), (15, 50)), (int(rng.integers(6, 11)), (75, 100))][kind]
        rated = float(rng.integers(lo, hi + 1)) * 1000.0
        _, lat, lon = _CITIES[int(rng.integers(len(_CITIES)))]
        plants.append(Plant(
            plant_id=f"syn-{k:06d}", capacity_kwp=round(n * rated / 1000.0 * float(rng.uniform(1.1, 1.35)), 2),
            latitude=round(lat + float(rng.uniform(-0.5, 0.5)), 4), longitude=round(lon + float(rng.uniform(-0.5, 0.5)), 4),
            tilt_deg=round(float(rng.uniform(5, 25)), 1), azimuth_deg=round(float((rng.uniform(-30, 30)) % 360), 1),
            inverters=[Inverter(inverter_id=f"inv-{j + 1:02d}", rated_power_w=rated) for j in range(n)]))
    return plants
