"""Deterministic sample files in the ANEEL open-data tariff formats, with expectations.

Three files, in the exact layouts of the ANEEL *dados abertos* extracts:

* ``tarifas-homologadas-distribuidoras-energia-eletrica.csv`` - ``;`` separated, decimal
  comma (zero written ``,00``), ISO dates, encoded in **cp1252/latin-1**, CRLF line ends,
  text fields containing a comma quoted (and, in a few rows, every text field quoted).
  Five real utilities (CEMIG-D, ENEL SP, COPEL-DIS, CPFL-PAULISTA, LIGHT SESA), 3 or 4
  consecutive annual validity periods each, on their own anniversary dates; values are
  synthetic but realistic for 2023-2026 and change by a few percent per period.
* ``componentes-tarifarias.csv`` - UTF-8 **with BOM**, LF line ends: ``TUSD_FioA``,
  ``TUSD_FioB``, ``TUSD_Encargos`` (the three add up exactly to the VlrTUSD of the same
  tariff row) and ``TE_Energia`` for B1/B3 Convencional and A4 Verde.
* ``bandeira-tarifaria-acionamento.csv`` - a byte-for-byte copy of the real extract.

Deliberately broken rows sit in the middle of the first two files; ``expected.json`` /
``EXPECTED.md`` (written by :func:`write_sample_tariffs`) list each of them with its
physical line number (header = line 1) and reason code, and give exact point-in-time
lookups (R$/kWh as decimal strings) to check a tariff book against.

:func:`write_benchmark_tariffs` writes a large, valid file in the first layout.

Pure Python (``csv`` is only used to read back); everything is a function of the seed.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

__all__ = [
    "BANDEIRA_SOURCE",
    "COMPONENTS_FILE",
    "COMPONENTS_HEADER",
    "FLAGS_FILE",
    "GENERATION_DATE",
    "TARIFFS_FILE",
    "TARIFFS_HEADER",
    "write_benchmark_tariffs",
    "write_sample_tariffs",
]

TARIFFS_FILE = "tarifas-homologadas-distribuidoras-energia-eletrica.csv"
COMPONENTS_FILE = "componentes-tarifarias.csv"
FLAGS_FILE = "bandeira-tarifaria-acionamento.csv"

TARIFFS_HEADER = (
    "DatGeracaoConjuntoDados;DscREH;SigAgente;NumCNPJDistribuidora;DatInicioVigencia;"
    "DatFimVigencia;DscBaseTarifaria;DscSubGrupo;DscModalidadeTarifaria;DscClasse;"
    "DscSubClasse;DscDetalhe;NomPostoTarifario;DscUnidadeTerciaria;SigAgenteAcessante;"
    "VlrTUSD;VlrTE"
)
COMPONENTS_HEADER = (
    "SigNomeAgente;DscComponenteTarifario;DscBaseTarifaria;DscSubGrupoTarifario;"
    "DscModalidadeTarifaria;DscClasseConsumidor;DscSubClasseConsumidor;DscDetalheConsumidor;"
    "DscPostoTarifario;VlrComponenteTarifario;DscUnidade;DatInicioVigencia;DatFimVigencia;"
    "DscResolucaoHomologatoria"
)

#: The repository's root (``data/`` holds the real extracts the samples copy).
_REPO = Path(__file__).resolve().parents[3]

#: The real flag extract (2015-01 .. 2026-04) copied verbatim into the sample folder; kept
#: in the repository (``data/aneel/``, provenance in its README).
BANDEIRA_SOURCE = _REPO / "data" / "aneel" / "bandeira-tarifaria-acionamento.csv"

#: DatGeracaoConjuntoDados of every generated row (same as the real flag extract).
GENERATION_DATE = date(2026, 5, 1)

TARIFFS_ENCODING = "cp1252"
COMPONENTS_ENCODING = "utf-8-sig"

NA = "Não se aplica"
TA = "Tarifa de Aplicação"
BE = "Base Econômica"
COMMERCIAL = "Comercial, Serviços e Outras Atividades"

# reason codes
UNPARSEABLE_VALUE = "unparseable_value"
NEGATIVE_VALUE = "negative_value"
MISSING_KEY = "missing_key"
UNKNOWN_UNIT = "unknown_unit"
OVERLAPPING_VALIDITY = "overlapping_validity"
REASONS = (UNPARSEABLE_VALUE, NEGATIVE_VALUE, MISSING_KEY, UNKNOWN_UNIT, OVERLAPPING_VALIDITY)

_MONTHS_PT = ("JANEIRO", "FEVEREIRO", "MARÇO", "ABRIL", "MAIO", "JUNHO", "JULHO", "AGOSTO",
              "SETEMBRO", "OUTUBRO", "NOVEMBRO", "DEZEMBRO")


# --------------------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------------------

def fmt_brl(cents: int) -> str:
    """ANEEL decimal: ``27187`` -> ``'271,87'``, ``0`` -> ``',00'``, ``45`` -> ``',45'``."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole if whole else ''},{frac:02d}"


def per_kwh_str(cents_per_mwh: int) -> str:
    """Exact R$/kWh string of a value in centavos per MWh: ``27187`` -> ``'0.27187'``."""
    return format(Decimal(cents_per_mwh).scaleb(-5), "f")


def reh_text(number: int, when: date) -> str:
    """``RESOLUÇÃO HOMOLOGATÓRIA Nº 3.254, DE 23 DE MAIO DE 2024``."""
    day = "1º" if when.day == 1 else str(when.day)
    num = f"{number:,}".replace(",", ".")
    return f"RESOLUÇÃO HOMOLOGATÓRIA Nº {num}, DE {day} DE {_MONTHS_PT[when.month - 1]} DE {when.year}"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (the same text on every
    clone), else as given."""
    try:
        return path.resolve().relative_to(_REPO).as_posix()
    except ValueError:
        return str(path)


def _anniversary(year: int, month: int, day: int) -> date:
    return date(year, month, day)


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _join(fields: list[str], text_cols: frozenset[int], quote_all: bool) -> str:
    """``;``-join; text fields are quoted when they hold a comma (or all, if quote_all)."""
    out = []
    for i, value in enumerate(fields):
        if i in text_cols and value and (quote_all or "," in value or ";" in value or '"' in value):
            out.append(_quote(value))
        else:
            out.append(value)
    return ";".join(out)


# text columns (0-based) of each layout: the ones that may be quoted
_TARIFF_TEXT_COLS = frozenset({1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14})
_COMPONENT_TEXT_COLS = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 13})


def _cnpj_check(digits12: str) -> str:
    def dv(base: str, weights: list[int]) -> str:
        r = sum(int(d) * w for d, w in zip(base, weights)) % 11
        return "0" if r < 2 else str(11 - r)
    d1 = dv(digits12, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    d2 = dv(digits12 + d1, [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    return digits12 + d1 + d2


# --------------------------------------------------------------------------------------
# the model of the sample
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Utility:
    sig: str
    cnpj12: str          # root + branch; the check digits are computed
    month: int           # tariff anniversary
    day: int
    n_periods: int
    tusd_b1: float       # B1 Residencial Convencional, first period, R$/MWh
    te_b1: float
    demand_a4: float     # A4 Verde demand, first period, R$/kW
    a3a: bool = False
    prepaid: bool = False

    @property
    def cnpj(self) -> str:
        return _cnpj_check(self.cnpj12)


UTILITIES: tuple[_Utility, ...] = (
    _Utility("CEMIG-D", "069811800001", 5, 28, 3, 404.0, 281.0, 23.5, a3a=True, prepaid=True),
    _Utility("ENEL SP", "616952270001", 7, 4, 3, 318.0, 262.0, 21.0, prepaid=True),
    _Utility("COPEL-DIS", "043688980001", 6, 24, 3, 296.0, 259.0, 20.0, a3a=True),
    _Utility("CPFL-PAULISTA", "330501960001", 4, 8, 4, 349.0, 266.0, 22.0),
    _Utility("LIGHT SESA", "604444370001", 3, 15, 4, 392.0, 281.0, 24.0, a3a=True),
)
FIRST_YEAR = 2023


@dataclass(frozen=True)
class _Kind:
    """One tariff row per utility-period (a key without utility/base/period)."""
    kid: str
    subgroup: str
    modality: str
    klass: str
    subclass: str
    detail: str
    post: str
    unit: str
    tusd_ratio: float    # x B1 TUSD (MWh rows) or x A4 demand (kW rows)
    te_ratio: float      # x B1 TE; 0 -> ,00
    economic: bool = False  # also written as Base Econômica
    only: str = ""       # "a3a" / "prepaid": only utilities with that flag

    @property
    def key_fields(self) -> dict[str, str]:
        return {"subgrupo": self.subgroup, "modalidade": self.modality, "classe": self.klass,
                "subclasse": self.subclass, "detalhe": self.detail, "posto": self.post,
                "unidade": self.unit}


KINDS: tuple[_Kind, ...] = (
    _Kind("B1_CONV", "B1", "Convencional", "Residencial", "Residencial", NA, NA, "MWh", 1.0, 1.0, economic=True),
    _Kind("B1_BAIXA_RENDA", "B1", "Convencional", "Residencial", "Baixa Renda", NA, NA, "MWh", 0.985, 0.995),
    _Kind("B1_SCEE", "B1", "Convencional", "Residencial", "Residencial", "SCEE", NA, "MWh", 0.71, 0.93),
    _Kind("B1_PREPAID", "B1", "Convencional pré-pagamento", "Residencial", "Residencial", NA, NA, "MWh",
          0.99, 0.998, only="prepaid"),
    _Kind("B1_BRANCA_P", "B1", "Branca", "Residencial", "Residencial", NA, "Ponta", "MWh", 2.95, 1.60),
    _Kind("B1_BRANCA_I", "B1", "Branca", "Residencial", "Residencial", NA, "Intermediário", "MWh", 1.90, 1.02),
    _Kind("B1_BRANCA_FP", "B1", "Branca", "Residencial", "Residencial", NA, "Fora ponta", "MWh", 0.60, 0.95),
    _Kind("B2_CONV", "B2", "Convencional", "Rural", "Agropecuária rural", NA, NA, "MWh", 0.80, 0.80),
    _Kind("B3_CONV", "B3", "Convencional", COMMERCIAL, NA, NA, NA, "MWh", 1.02, 1.0, economic=True),
    _Kind("B3_BRANCA_P", "B3", "Branca", COMMERCIAL, NA, NA, "Ponta", "MWh", 3.00, 1.61),
    _Kind("B3_BRANCA_I", "B3", "Branca", COMMERCIAL, NA, NA, "Intermediário", "MWh", 1.93, 1.03),
    _Kind("B3_BRANCA_FP", "B3", "Branca", COMMERCIAL, NA, NA, "Fora ponta", "MWh", 0.61, 0.96),
    _Kind("B4A_CONV", "B4a", "Convencional", "Iluminação pública", NA, NA, NA, "MWh", 0.55, 0.55),
    _Kind("A4_VERDE_P", "A4", "Verde", NA, NA, NA, "Ponta", "MWh", 3.40, 1.62, economic=True),
    _Kind("A4_VERDE_FP", "A4", "Verde", NA, NA, NA, "Fora ponta", "MWh", 0.27, 1.00, economic=True),
    _Kind("A4_VERDE_D", "A4", "Verde", NA, NA, NA, NA, "kW", 1.0, 0.0, economic=True),
    _Kind("A4_VERDE_APE_P", "A4", "Verde", NA, NA, "APE", "Ponta", "MWh", 2.90, 0.0),
    _Kind("A4_VERDE_APE_FP", "A4", "Verde", NA, NA, "APE", "Fora ponta", "MWh", 0.22, 0.0),
    _Kind("A4_AZUL_DP", "A4", "Azul", NA, NA, NA, "Ponta", "kW", 1.85, 0.0),
    _Kind("A4_AZUL_DFP", "A4", "Azul", NA, NA, NA, "Fora ponta", "kW", 0.80, 0.0),
    _Kind("A4_AZUL_P", "A4", "Azul", NA, NA, NA, "Ponta", "MWh", 0.27, 1.62),
    _Kind("A4_AZUL_FP", "A4", "Azul", NA, NA, NA, "Fora ponta", "MWh", 0.27, 1.00),
    _Kind("A3A_VERDE_P", "A3a", "Verde", NA, NA, NA, "Ponta", "MWh", 2.90, 1.62, only="a3a"),
    _Kind("A3A_VERDE_FP", "A3a", "Verde", NA, NA, NA, "Fora ponta", "MWh", 0.22, 1.00, only="a3a"),
    _Kind("A3A_VERDE_D", "A3a", "Verde", NA, NA, NA, NA, "kW", 0.82, 0.0, only="a3a"),
)
_KIND = {k.kid: k for k in KINDS}

#: kinds that get TUSD_FioA/TUSD_FioB/TUSD_Encargos/TE_Energia rows: kid -> (FioB share
#: range, FioA share range); the components are written for Tarifa de Aplicação, and
#: for B1 also for Base Econômica (a trap for a lookup that ignores the base).
_COMPONENT_KINDS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "B1_CONV": ((0.38, 0.50), (0.08, 0.12)),
    "B3_CONV": ((0.38, 0.50), (0.08, 0.12)),
    "A4_VERDE_P": ((0.55, 0.65), (0.09, 0.12)),
    "A4_VERDE_FP": ((0.20, 0.30), (0.12, 0.16)),
}
_COMPONENTS = ("TUSD_FioA", "TUSD_FioB", "TUSD_Encargos", "TE_Energia")

# realistic-value guards (R$/MWh and R$/kW, in cents)
_B1_TUSD_RANGE = (25000, 48000)
_B1_TE_RANGE = (24000, 33000)
_DEMAND_RANGE = (1500, 6000)


@dataclass
class _Period:
    start: date
    end: date
    reh: str
    tusd_factor: float
    te_factor: float


@dataclass(eq=False)
class _Line:
    """One physical data line (identity matters: line numbers are found by identity)."""
    fields: list[str]
    quote_all: bool = False
    issues: list[dict] = field(default_factory=list)


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


def _plan_periods(rng: random.Random) -> dict[str, list[_Period]]:
    """Annual validity periods per utility, with REH numbers increasing with their date."""
    raw: list[tuple[date, str, date, date]] = []  # (reh date, sig, start, end)
    for u in UTILITIES:
        for i in range(u.n_periods):
            start = _anniversary(FIRST_YEAR + i, u.month, u.day)
            end = _anniversary(FIRST_YEAR + i + 1, u.month, u.day) - timedelta(days=1)
            raw.append((start - timedelta(days=rng.randint(3, 8)), u.sig, start, end))
    raw.sort()
    numbers = _reh_numbers([r[0] for r in raw], rng)
    periods: dict[str, list[_Period]] = {u.sig: [] for u in UTILITIES}
    factors: dict[str, tuple[float, float]] = {u.sig: (1.0, 1.0) for u in UTILITIES}
    for (reh_date, sig, start, end), number in sorted(zip(raw, numbers), key=lambda t: (t[0][1], t[0][2])):
        tusd_f, te_f = factors[sig]
        if periods[sig]:  # a yearly adjustment of a few percent
            tusd_f *= 1 + round(rng.uniform(-0.030, 0.060), 3)
            te_f *= 1 + round(rng.uniform(-0.050, 0.040), 3)
        factors[sig] = (tusd_f, te_f)
        periods[sig].append(_Period(start, end, reh_text(number, reh_date), tusd_f, te_f))
    return periods


def _reh_numbers(dates: list[date], rng: random.Random) -> list[int]:
    """Strictly increasing REH numbers along time (~3.170 in early 2023, ~135 a year)."""
    out, last = [], 0
    for d in dates:
        n = 3170 + int((d - date(2023, 3, 1)).days * 135 / 365) + rng.randint(0, 4)
        last = max(n, last + 1)
        out.append(last)
    return out


@dataclass
class _Values:
    tusd: int   # cents per MWh (or per kW)
    te: int


def _tariff_values(u: _Utility, kind: _Kind, period: _Period, noise: dict, rng_period: random.Random) -> _Values:
    b1_tusd = u.tusd_b1 * period.tusd_factor
    b1_te = u.te_b1 * period.te_factor
    n_tusd, n_te = noise[(u.sig, kind.kid)]
    jitter_tusd = 1 + rng_period.uniform(-0.004, 0.004)
    jitter_te = 1 + rng_period.uniform(-0.004, 0.004)
    if kind.kid == "B1_CONV":  # the reference row: base x period factor x a small jitter
        tusd = _clamp(round(b1_tusd * jitter_tusd * 100), _B1_TUSD_RANGE)
        te = _clamp(round(b1_te * jitter_te * 100), _B1_TE_RANGE)
        return _Values(tusd, te)
    if kind.unit == "kW":
        tusd = round(u.demand_a4 * period.tusd_factor * kind.tusd_ratio * n_tusd * jitter_tusd * 100)
        return _Values(_clamp(tusd, _DEMAND_RANGE), 0)
    tusd = round(b1_tusd * kind.tusd_ratio * n_tusd * jitter_tusd * 100)
    te = round(b1_te * kind.te_ratio * n_te * jitter_te * 100) if kind.te_ratio else 0
    return _Values(tusd, te)


# --------------------------------------------------------------------------------------
# the sample
# --------------------------------------------------------------------------------------

def _tariff_fields(u_sig: str, cnpj: str, period_start: str, period_end: str, reh: str, base: str,
                   kind: _Kind, tusd: str, te: str, *, unit: str | None = None,
                   subgroup: str | None = None, subclass: str | None = None,
                   modality: str | None = None) -> list[str]:
    return [
        GENERATION_DATE.isoformat(), reh, u_sig, cnpj, period_start, period_end, base,
        kind.subgroup if subgroup is None else subgroup,
        kind.modality if modality is None else modality,
        kind.klass,
        kind.subclass if subclass is None else subclass,
        kind.detail, kind.post,
        kind.unit if unit is None else unit,
        NA, tusd, te,
    ]


def write_sample_tariffs(out_dir: Path, expected_dir: Path | None = None, seed: int = 3, *,
                         bandeira_source: Path | None = None) -> dict[str, int]:
    """Write the three sample ANEEL files and their expectations.

    Parameters
    ----------
    out_dir : pathlib.Path
        folder of the three data files (created if missing).
    expected_dir : pathlib.Path, optional
        folder of ``expected.json`` and ``EXPECTED.md``; default ``<out_dir>_expected``
        beside ``out_dir`` (so landing the data folder never lands the expectations).
    seed : int
        value seed; same seed, same bytes.
    bandeira_source : pathlib.Path, optional
        the real flag extract to copy (default :data:`BANDEIRA_SOURCE`). If it is missing
        but ``out_dir`` already holds a copy, the copy is kept.

    Returns
    -------
    dict
        data rows (header excluded, broken rows included) per file name.
    """
    out_dir = Path(out_dir)
    expected_dir = Path(expected_dir) if expected_dir is not None else out_dir.with_name(out_dir.name + "_expected")
    out_dir.mkdir(parents=True, exist_ok=True)
    expected_dir.mkdir(parents=True, exist_ok=True)

    rng = random.Random(f"tariffs:{seed}")
    periods = _plan_periods(rng)
    by_sig = {u.sig: u for u in UTILITIES}

    # per utility-kind fixed deviations from the nominal ratios (B1_CONV is the reference)
    noise = {}
    for u in UTILITIES:
        for k in KINDS:
            noise[(u.sig, k.kid)] = (rng.uniform(0.96, 1.04), rng.uniform(0.98, 1.02))
    econ = {u.sig: (rng.uniform(0.955, 0.99), rng.uniform(0.97, 1.01)) for u in UTILITIES}
    shares = {(u.sig, kid): (rng.uniform(*fb), rng.uniform(*fa), rng.uniform(0.80, 0.86))
              for u in UTILITIES for kid, (fb, fa) in _COMPONENT_KINDS.items()}

    # ---- good tariff rows ------------------------------------------------------------
    tariff_lines: list[_Line] = []
    # (sig, base, kid, period index) -> (line, values)
    index: dict[tuple[str, str, str, int], tuple[_Line, _Values]] = {}
    for u in UTILITIES:
        for pi, p in enumerate(periods[u.sig]):
            rng_period = random.Random(f"tariffs:{seed}:{u.sig}:{pi}")
            for k in KINDS:
                if (k.only == "a3a" and not u.a3a) or (k.only == "prepaid" and not u.prepaid):
                    continue
                v = _tariff_values(u, k, p, noise, rng_period)
                bases = [(TA, v)]
                if k.economic:
                    et, ee = econ[u.sig]
                    ev = _Values(round(v.tusd * et * (1 + rng_period.uniform(-0.003, 0.003))),
                                 round(v.te * ee) if v.te else 0)
                    bases.append((BE, ev))
                for base, val in bases:
                    line = _Line(_tariff_fields(u.sig, u.cnpj, p.start.isoformat(), p.end.isoformat(), p.reh,
                                                base, k, fmt_brl(val.tusd), fmt_brl(val.te)),
                                 quote_all=rng.random() < 0.08)
                    tariff_lines.append(line)
                    index[(u.sig, base, k.kid, pi)] = (line, val)

    # ---- broken tariff rows ----------------------------------------------------------
    broken: list[_Line] = []

    def bad(sig: str, pi: int, kind_id: str, tusd: str, te: str, reason: str, note: str, **override) -> _Line:
        u, p = by_sig[sig], periods[sig][pi]
        start = override.pop("start", p.start.isoformat())
        sig_value = override.pop("sig_value", sig)
        line = _Line(_tariff_fields(sig_value, u.cnpj, start, p.end.isoformat(), p.reh, TA, _KIND[kind_id],
                                    tusd, te, **override))
        line.issues.append({"reason": reason, "note": note})
        broken.append(line)
        return line

    rural_irrig = "Serviço público de irrigação rural"
    bad("ENEL SP", 1, "B2_CONV", "12,3,4", "205,31", UNPARSEABLE_VALUE,
        "VlrTUSD written '12,3,4' (B2 Rural, subclass 'Serviço público de irrigação rural')",
        subclass=rural_irrig)
    bad("COPEL-DIS", 0, "B3_CONV", "301,18", "abc", UNPARSEABLE_VALUE,
        "VlrTE written 'abc' (B3 Convencional pré-pagamento)", modality="Convencional pré-pagamento")
    bad("ENEL SP", 2, "A3A_VERDE_P", "-1312,45", "455,02", NEGATIVE_VALUE,
        "VlrTUSD -1312,45 (A3a Verde Ponta; ENEL SP has no other A3a rows)")
    bad("CPFL-PAULISTA", 1, "A3A_VERDE_FP", "71,94", "-287,10", NEGATIVE_VALUE,
        "VlrTE -287,10 (A3a Verde Fora ponta; CPFL-PAULISTA has no other A3a rows)")
    v = index[("LIGHT SESA", TA, "B2_CONV", 1)][1]
    bad("LIGHT SESA", 1, "B2_CONV", fmt_brl(v.tusd), fmt_brl(v.te), MISSING_KEY,
        "empty SigAgente (otherwise a copy of LIGHT SESA's B2 row of the same period)", sig_value="")
    v = index[("CEMIG-D", TA, "A4_AZUL_DP", 2)][1]
    bad("CEMIG-D", 2, "A4_AZUL_DP", fmt_brl(v.tusd + 37), ",00", MISSING_KEY,
        "empty DscSubGrupo (A4 Azul Ponta kW look-alike)", subgroup="")
    v = index[("COPEL-DIS", TA, "B4A_CONV", 1)][1]
    bad("COPEL-DIS", 1, "B4A_CONV", fmt_brl(v.tusd), fmt_brl(v.te), MISSING_KEY,
        "empty DatInicioVigencia (B4a look-alike)", start="")
    bad("CEMIG-D", 1, "A4_VERDE_D", ",00", "271,44", UNKNOWN_UNIT,
        "DscUnidadeTerciaria 'MVArh' (reactive energy excess)", unit="MVArh")
    bad("ENEL SP", 0, "B1_PREPAID", "15,20", ",00", UNKNOWN_UNIT,
        "DscUnidadeTerciaria 'R$' (a fee, not a tariff; B1 pré-pagamento look-alike)", unit="R$")

    # overlapping validity: an extra row for an existing key (never a lookup key)
    overlaps = [
        ("COPEL-DIS", 1, "A4_VERDE_P", date(2024, 9, 1), 1.07, 1.0),
        ("ENEL SP", 0, "B1_BRANCA_I", date(2024, 1, 1), 1.0, 1.05),
    ]
    used_reh = {p.reh for ps in periods.values() for p in ps}
    for sig, pi, kid, start, f_tusd, f_te in overlaps:
        u, p = by_sig[sig], periods[sig][pi]
        original, val = index[(sig, TA, kid, pi)]
        reh_date = start - timedelta(days=5)
        number = 3170 + int((reh_date - date(2023, 3, 1)).days * 135 / 365) + 2
        while reh_text(number, reh_date) in used_reh:
            number += 1
        extra = _Line(_tariff_fields(sig, u.cnpj, start.isoformat(), p.end.isoformat(), reh_text(number, reh_date),
                                     TA, _KIND[kid], fmt_brl(round(val.tusd * f_tusd)),
                                     fmt_brl(round(val.te * f_te))))
        assert p.start < start <= p.end  # overlaps this period only (the next one starts after p.end)
        extra.issues.append({"reason": OVERLAPPING_VALIDITY, "partner": original,
                             "note": f"{sig} {kid} {start.isoformat()}..{p.end.isoformat()} overlaps "
                                     f"{p.start.isoformat()}..{p.end.isoformat()} with other values"})
        original.issues.append({"reason": OVERLAPPING_VALIDITY, "partner": extra,
                                "note": f"{sig} {kid} {p.start.isoformat()}..{p.end.isoformat()} overlapped by "
                                        f"{start.isoformat()}..{p.end.isoformat()}"})
        broken.append(extra)

    rng.shuffle(broken)
    tariff_lines = _insert_middle(tariff_lines, broken, rng)

    # ---- components ------------------------------------------------------------------
    comp_lines: list[_Line] = []
    comp_index: dict[tuple[str, str, str, int, str], tuple[_Line, int]] = {}
    for u in UTILITIES:
        for pi, p in enumerate(periods[u.sig]):
            for kid in _COMPONENT_KINDS:
                k = _KIND[kid]
                for base in ((TA, BE) if kid == "B1_CONV" else (TA,)):
                    val = index[(u.sig, base, kid, pi)][1]
                    fb_share, fa_share, te_share = shares[(u.sig, kid)]
                    if base == BE:
                        fb_share *= 0.97
                    fio_b = round(val.tusd * fb_share)
                    fio_a = round(val.tusd * fa_share)
                    values = {"TUSD_FioA": fio_a, "TUSD_FioB": fio_b,
                              "TUSD_Encargos": val.tusd - fio_a - fio_b,
                              "TE_Energia": round(val.te * te_share)}
                    for comp in _COMPONENTS:
                        line = _Line(_component_fields(u.sig, comp, base, k, fmt_brl(values[comp]), p),
                                     quote_all=rng.random() < 0.08)
                        comp_lines.append(line)
                        comp_index[(u.sig, base, kid, pi, comp)] = (line, values[comp])

    comp_broken = []
    line = _Line(_component_fields("CPFL-PAULISTA", "TUSD_FioB", TA, _KIND["B2_CONV"], "12,3,4",
                                   periods["CPFL-PAULISTA"][1]))
    line.issues.append({"reason": UNPARSEABLE_VALUE, "note": "VlrComponenteTarifario written '12,3,4' (B2 Rural)"})
    comp_broken.append(line)
    src_line, src_val = comp_index[("LIGHT SESA", TA, "B3_CONV", 2, "TUSD_FioB")]
    line = _Line(list(src_line.fields))
    line.fields[0] = ""
    line.fields[9] = fmt_brl(src_val + 113)
    line.issues.append({"reason": MISSING_KEY, "note": "empty SigNomeAgente (B3 TUSD_FioB look-alike)"})
    comp_broken.append(line)
    comp_lines = _insert_middle(comp_lines, comp_broken, rng)

    # ---- write -----------------------------------------------------------------------
    tariff_text = TARIFFS_HEADER + "\r\n" + "".join(
        _join(li.fields, _TARIFF_TEXT_COLS, li.quote_all) + "\r\n" for li in tariff_lines)
    (out_dir / TARIFFS_FILE).write_bytes(tariff_text.encode(TARIFFS_ENCODING))
    comp_text = COMPONENTS_HEADER + "\n" + "".join(
        _join(li.fields, _COMPONENT_TEXT_COLS, li.quote_all) + "\n" for li in comp_lines)
    (out_dir / COMPONENTS_FILE).write_bytes(comp_text.encode(COMPONENTS_ENCODING))

    source = Path(bandeira_source) if bandeira_source is not None else BANDEIRA_SOURCE
    flags_dest = out_dir / FLAGS_FILE
    if source.is_file():
        shutil.copyfile(source, flags_dest)
    elif not flags_dest.is_file():
        raise FileNotFoundError(f"real flag extract not found: {source}")
    flags_rows = sum(1 for raw in flags_dest.read_bytes().splitlines()[1:] if raw.strip())

    # ---- expectations ----------------------------------------------------------------
    t_line_no = {id(li): n for n, li in enumerate(tariff_lines, start=2)}
    c_line_no = {id(li): n for n, li in enumerate(comp_lines, start=2)}

    def issues_of(lines: list[_Line], numbers: dict[int, int]) -> list[dict]:
        out = []
        for li in lines:
            for issue in li.issues:
                entry = {"line": numbers[id(li)], "reason": issue["reason"]}
                if "partner" in issue:
                    entry["other_line"] = numbers[id(issue["partner"])]
                entry["note"] = issue["note"]
                out.append(entry)
        return sorted(out, key=lambda e: e["line"])

    tariff_bad = issues_of(tariff_lines, t_line_no)
    comp_bad = issues_of(comp_lines, c_line_no)

    lookups, outside = [], []
    for u in UTILITIES:
        ps = periods[u.sig]
        for kid in ("B1_CONV", "B3_CONV"):
            k = _KIND[kid]
            for pi, p in enumerate(ps):
                t_line, val = index[(u.sig, TA, kid, pi)]
                fb_line, fb = comp_index[(u.sig, TA, kid, pi, "TUSD_FioB")]
                assert not t_line.issues
                mid = p.start + timedelta(days=182)
                for which, when in (("first_day", p.start), ("mid_period", mid), ("last_day", p.end)):
                    lookups.append({
                        "sig_agente": u.sig, "base": TA, **k.key_fields, "date": when.isoformat(),
                        "which": which, "vigencia": [p.start.isoformat(), p.end.isoformat()], "reh": p.reh,
                        "tusd_brl_per_kwh": per_kwh_str(val.tusd), "te_brl_per_kwh": per_kwh_str(val.te),
                        "fio_b_brl_per_kwh": per_kwh_str(fb),
                        "tarifas_line": t_line_no[id(t_line)], "componentes_line": c_line_no[id(fb_line)],
                    })
            for which, when in (("before_first_period", ps[0].start - timedelta(days=1)),
                                ("after_last_period", ps[-1].end + timedelta(days=1))):
                outside.append({"sig_agente": u.sig, "base": TA, **k.key_fields, "date": when.isoformat(),
                                "which": which, "expected": None})

    counts = {TARIFFS_FILE: len(tariff_lines), COMPONENTS_FILE: len(comp_lines), FLAGS_FILE: flags_rows}
    expected = {
        "generated_by": f"ysh.samples.tariffs.write_sample_tariffs(seed={seed})",
        "seed": seed,
        "line_numbers": "physical line in the file, header = line 1",
        "values": "R$/kWh = R$/MWh / 1000 as exact decimal strings (compare with decimal.Decimal)",
        "files": {
            TARIFFS_FILE: {
                "encoding": TARIFFS_ENCODING, "delimiter": ";", "line_terminator": "CRLF",
                "rows": counts[TARIFFS_FILE],
                "rows_with_issues": len({e["line"] for e in tariff_bad}),
                "quarantined": sum(e["reason"] != OVERLAPPING_VALIDITY for e in tariff_bad),
                "bad": tariff_bad,
                "periods": {sig: [{"start": p.start.isoformat(), "end": p.end.isoformat(), "reh": p.reh}
                                  for p in ps] for sig, ps in periods.items()},
                "cnpj": {u.sig: u.cnpj for u in UTILITIES},
            },
            COMPONENTS_FILE: {
                "encoding": COMPONENTS_ENCODING, "delimiter": ";", "line_terminator": "LF",
                "rows": counts[COMPONENTS_FILE],
                "rows_with_issues": len({e["line"] for e in comp_bad}),
                "quarantined": len(comp_bad),
                "bad": comp_bad,
                "note": "TUSD_FioA + TUSD_FioB + TUSD_Encargos = VlrTUSD of the same tariff row, exactly",
            },
            FLAGS_FILE: {
                "encoding": "utf-8", "delimiter": ";", "line_terminator": "LF",
                "rows": flags_rows, "bad": [], "note": f"byte-for-byte copy of {_shown(source)}",
            },
        },
        "lookups": lookups,
        "lookups_without_tariff": outside,
    }
    (expected_dir / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=2) + "\n",
                                                encoding="utf-8")
    (expected_dir / "EXPECTED.md").write_text(_expected_md(expected), encoding="utf-8")
    return counts


def _component_fields(sig: str, comp: str, base: str, k: _Kind, value: str, p: _Period) -> list[str]:
    return [sig, comp, base, k.subgroup, k.modality, k.klass, k.subclass, k.detail, k.post, value, "R$/MWh",
            p.start.isoformat(), p.end.isoformat(), p.reh]


def _insert_middle(lines: list[_Line], extra: list[_Line], rng: random.Random) -> list[_Line]:
    """Insert ``extra`` (in order) at distinct random positions in the middle 30-70 %."""
    n = len(lines)
    positions = sorted(rng.sample(range(int(n * 0.3), int(n * 0.7)), len(extra)))
    out, taken = [], 0
    for i, li in enumerate(lines):
        while taken < len(extra) and positions[taken] == i:
            out.append(extra[taken])
            taken += 1
        out.append(li)
    return out


def _expected_md(exp: dict) -> str:
    md = [
        "# Sample ANEEL tariff files: expected results",
        "",
        f"Generated by `{exp['generated_by']}` (`scripts/make_sample_tariffs.py`); do not edit by hand. "
        "Utilities and formats are real, tariff values are synthetic (realistic for 2023-2026); "
        "the flag file is the real ANEEL extract. Machine-readable: `expected.json`.",
        "",
        "Line numbers are physical lines (header = line 1). Reason codes: `unparseable_value`, "
        "`negative_value`, `missing_key`, `unknown_unit` (quarantined) and `overlapping_validity` "
        "(listed on both rows of the pair).",
        "",
        "| file | encoding | rows | bad lines |",
        "|---|---|---:|---:|",
    ]
    for name, f in exp["files"].items():
        md.append(f"| `{name}` | {f['encoding']} | {f['rows']} | {len(f['bad'])} |")
    for name, f in exp["files"].items():
        if not f["bad"]:
            continue
        md += ["", f"## `{name}`", "", "| line | reason | other line | note |", "|---:|---|---:|---|"]
        for e in f["bad"]:
            md.append(f"| {e['line']} | `{e['reason']}` | {e.get('other_line', '')} | {e['note']} |")
    md += ["", "## Point-in-time lookups",
           "",
           "Tarifa de Aplicação, Convencional, DscDetalhe/posto `Não se aplica`, unit MWh; R$/kWh. "
           "B1 = Residencial/Residencial, B3 = Comercial, Serviços e Outras Atividades/Não se aplica. "
           f"All {len(exp['lookups'])} rows are in `expected.json`; first and last days of each period "
           "are included. Days before the first and after the last period have no tariff "
           "(`lookups_without_tariff`).",
           "",
           "| utility | subgroup | date | TUSD | TE | Fio B |", "|---|---|---|---:|---:|---:|"]
    for e in exp["lookups"]:
        if e["which"] == "mid_period":
            md.append(f"| {e['sig_agente']} | {e['subgrupo']} | {e['date']} | {e['tusd_brl_per_kwh']} | "
                      f"{e['te_brl_per_kwh']} | {e['fio_b_brl_per_kwh']} |")
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------------------
# benchmark
# --------------------------------------------------------------------------------------

_BENCH_STEMS = ("ELETROVALE", "CELNORTE", "ENERSUL", "LUZSERRA", "COSERN-X", "FORCAVALE",
                "CERAGRO", "COOPERLUZ", "ENERGIAMAR", "CELCENTRO", "ELETROPLAN", "RIOLUZ")
_BENCH_UFS = ("MG", "SP", "PR", "RS", "BA")


def _bench_templates() -> list[tuple[str, ...]]:
    """Distinct keys: (base, subgroup, modality, class, subclass, detail, post, unit)."""
    keys: list[tuple[str, ...]] = []
    branca = ("Ponta", "Intermediário", "Fora ponta")
    low = [
        ("B1", "Residencial", ("Residencial", "Baixa Renda", "Baixa Renda Indígena", "Baixa Renda Quilombola")),
        ("B2", "Rural", ("Agropecuária rural", "Cooperativa de eletrificação rural",
                         "Serviço público de irrigação rural", "Agropecuária urbana", "Residencial rural")),
        ("B3", COMMERCIAL, (NA, "Comercial", "Serviços de transporte")),
        ("B3", "Industrial", (NA,)),
        ("B3", "Poder Público", ("Poder público federal", "Poder público estadual", "Poder público municipal")),
        ("B3", "Serviço Público", ("Água, esgoto e saneamento", "Tração elétrica")),
        ("B3", "Consumo Próprio", (NA,)),
        ("B4a", "Iluminação pública", (NA,)),
        ("B4b", "Iluminação pública", (NA,)),
    ]
    for base in (TA, BE):
        for subgroup, klass, subclasses in low:
            for subclass in subclasses:
                for detail in (NA, "SCEE", "APE"):
                    keys.append((base, subgroup, "Convencional", klass, subclass, detail, NA, "MWh"))
                    for post in branca:
                        keys.append((base, subgroup, "Branca", klass, subclass, detail, post, "MWh"))
                    if subgroup in ("B1", "B3"):
                        keys.append((base, subgroup, "Convencional pré-pagamento", klass, subclass, detail, NA, "MWh"))
        for subgroup in ("A1", "A2", "A3", "A3a", "A4", "AS"):
            for detail in (NA, "SCEE", "APE", "Geração"):
                for post in ("Ponta", "Fora ponta"):
                    keys.append((base, subgroup, "Azul", NA, NA, detail, post, "kW"))
                    keys.append((base, subgroup, "Azul", NA, NA, detail, post, "MWh"))
                    keys.append((base, subgroup, "Verde", NA, NA, detail, post, "MWh"))
                keys.append((base, subgroup, "Verde", NA, NA, detail, NA, "kW"))
                keys.append((base, subgroup, "Distribuição", NA, NA, detail, NA, "kW"))
    assert len(set(keys)) == len(keys)
    return keys


def _bench_ratio(template: tuple[str, ...], rng: random.Random) -> tuple[float, float]:
    """(TUSD, TE) multipliers of a benchmark key: x B1 values (MWh) or x demand (kW)."""
    _, subgroup, modality, _, _, _, post, unit = template
    if unit == "kW":
        return (rng.uniform(1.6, 2.0) if post == "Ponta" else rng.uniform(0.7, 1.1)), 0.0
    if modality == "Branca":
        tusd = {"Ponta": (2.5, 3.2), "Intermediário": (1.6, 2.1)}.get(post, (0.55, 0.7))
        te = {"Ponta": (1.5, 1.7), "Intermediário": (0.98, 1.06)}.get(post, (0.9, 0.97))
        return rng.uniform(*tusd), rng.uniform(*te)
    if subgroup.startswith("A"):
        tusd = (2.5, 3.6) if (modality == "Verde" and post == "Ponta") else (0.2, 0.35)
        return rng.uniform(*tusd), (rng.uniform(1.5, 1.7) if post == "Ponta" else rng.uniform(0.95, 1.05))
    return rng.uniform(0.7, 1.1), rng.uniform(0.8, 1.05)


def write_benchmark_tariffs(path: Path, n_rows: int, seed: int = 5) -> int:
    """Write ``n_rows`` valid rows in the *tarifas homologadas* layout (cp1252, CRLF).

    60 invented utilities, each with consecutive non-overlapping annual periods ending in
    2026-2027 and, per period, distinct keys (subgroups A1..B4b, classes, subclasses,
    details, posts, kW/MWh, both bases); rows are spread evenly over utility-periods.
    Returns the number of data rows written (``n_rows``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"bench:{seed}")
    templates = _bench_templates()
    utilities = [f"{stem} {uf}" for stem in _BENCH_STEMS for uf in _BENCH_UFS]
    n_periods = max(1, math.ceil(n_rows / (len(utilities) * len(templates))))
    pairs = len(utilities) * n_periods
    per_pair, extra = divmod(n_rows, pairs)
    template_ratio = [_bench_ratio(t, rng) for t in templates]

    out: list[str] = [TARIFFS_HEADER]
    pair_no = written = 0
    for ui, sig in enumerate(utilities):
        cnpj = _cnpj_check(f"{rng.randrange(10**7, 10**8)}0001")
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        tusd0, te0, dem0 = rng.uniform(230, 420), rng.uniform(220, 300), rng.uniform(15, 30)
        # the last period is the one in force on the generation date
        last_year = GENERATION_DATE.year - (1 if (month, day) > (GENERATION_DATE.month, GENERATION_DATE.day) else 0)
        first_year = last_year - n_periods + 1
        tusd_f = te_f = 1.0
        for pi in range(n_periods):
            start = date(first_year + pi, month, day)
            end = date(first_year + pi + 1, month, day) - timedelta(days=1)
            reh_date = start - timedelta(days=5)
            number = 1000 + (first_year + pi - 2010) * 130 + ui * 2 + (month > 6)
            reh = reh_text(number, reh_date)
            if pi:
                tusd_f *= 1 + rng.uniform(-0.03, 0.06)
                te_f *= 1 + rng.uniform(-0.05, 0.04)
            k = per_pair + (1 if pair_no < extra else 0)
            pair_no += 1
            if k > len(templates):
                raise ValueError("too many rows per period; raise the number of templates")
            head = f"{GENERATION_DATE.isoformat()};\"{reh}\";{sig};{cnpj};{start.isoformat()};{end.isoformat()};"
            for ti in range(k):
                base, subgroup, modality, klass, subclass, detail, post, unit = templates[ti]
                rt, re_ = template_ratio[ti]
                if unit == "kW":
                    tusd, te = round(dem0 * tusd_f * rt * 100), 0
                else:
                    tusd, te = round(tusd0 * tusd_f * rt * 100), round(te0 * te_f * re_ * 100)
                if detail == "APE":
                    te = 0
                klass_txt = f"\"{klass}\"" if "," in klass else klass
                subclass_txt = f"\"{subclass}\"" if "," in subclass else subclass
                out.append(f"{head}{base};{subgroup};{modality};{klass_txt};{subclass_txt};{detail};{post};"
                           f"{unit};{NA};{fmt_brl(tusd)};{fmt_brl(te)}")
                written += 1
    path.write_bytes(("\r\n".join(out) + "\r\n").encode(TARIFFS_ENCODING))
    return written
