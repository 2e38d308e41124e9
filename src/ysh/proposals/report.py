"""A static HTML report of the proposal analytics (``ysh report``).

Reads what the proposals pipeline wrote (``propostas_enriched``, ``propostas_analytics``,
``kpis_b1_b3``) and writes ONE self-contained page: plotly.js is embedded inline once, so
the file opens offline. The audience is Brazilian: labels are in Portuguese and numbers
are formatted pt-BR style (``R$ 1.234,56``), in the tables and in the charts
(``layout.separators``).

The page holds:
1. totals: proposals, evaluated, with errors, orders, conversion, total kWp, median payback
   and median IRR (over the evaluated proposals; the payback median over those paid back);
2. a histogram of the simple payback by customer class (B1/B3), with a note counting the
   proposals never paid back within the horizon;
3. one proposal's simple and discounted cumulative cash flow, with the zero line and the
   payback points. ``quote_id`` chooses it; by default the evaluated proposal with the
   median payback (lower median when the count is even, ties broken by quote id);
4. the ``kpis_b1_b3`` table, sorted by class, state and month;
5. the proposals that could not be evaluated, with their reason.

Every text that comes from the database is HTML-escaped.
"""

from __future__ import annotations

import html
import math
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from psycopg.rows import dict_row

from ..db import Warehouse, connect
from ..kit.files import atomic_write

EMPTY_ANALYTICS = ("no evaluated proposals in propostas_analytics; "
                   "run the proposals pipeline first")

_CLASS_COLORS = {"B1": "#1f77b4", "B3": "#ff7f0e"}
_MONTHS = ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez")
_DASH = "—"


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    proposals: int  # rows in propostas_analytics (evaluated + with errors)
    errors: int  # rows whose ``error`` is set
    orders: int  # rows with ``ordered``
    chosen_quote_id: str  # the proposal whose cash flow is drawn


# --- pt-BR formatting ---------------------------------------------------------------------

def fmt_number(value: float | int | None, decimals: int = 0) -> str:
    """``1234.5`` → ``1.234,50`` (pt-BR: ``.`` groups thousands, ``,`` is the decimal mark)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _DASH
    text = f"{abs(value):,.{decimals}f}".translate(str.maketrans({",": ".", ".": ","}))
    negative = round(value, decimals) < 0
    return f"-{text}" if negative else text


def fmt_brl(value: float | None, decimals: int = 2) -> str:
    """``-12345.678`` → ``-R$ 12.345,68``."""
    if value is None or not math.isfinite(value):
        return _DASH
    text = fmt_number(abs(value), decimals)
    return f"-R$ {text}" if round(value, decimals) < 0 else f"R$ {text}"


def fmt_pct(value: float | None, decimals: int = 1) -> str:
    """A percent already in percent units: ``12.34`` → ``12,3 %``."""
    return _DASH if value is None else f"{fmt_number(value, decimals)} %"


def fmt_ratio(value: float | None, decimals: int = 1) -> str:
    """A share (0–1) as a percent: ``0.25`` → ``25,0 %``."""
    return _DASH if value is None else fmt_pct(value * 100, decimals)


def fmt_years(value: float | None, decimals: int = 1) -> str:
    return _DASH if value is None else f"{fmt_number(value, decimals)} anos"


def fmt_month(value: date | None) -> str:
    return _DASH if value is None else f"{_MONTHS[value.month - 1]}/{value.year}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# --- reading ------------------------------------------------------------------------------

_ANALYTICS_SQL = """
SELECT a.quote_id, a.customer_class, a.state, a.quote_month, a.ordered, a.system_kwp,
       a.error, a.npv_brl, a.irr_pct, a.payback_years, a.discounted_payback_years, a.roi,
       a.year1_bill_without_solar_brl, a.year1_bill_with_solar_brl, a.year1_savings_brl,
       a.yearly, e.municipality, e.utility, e.capex_brl, e.tariff_error, e.unknown_skus
FROM propostas_analytics a
LEFT JOIN propostas_enriched e USING (quote_id)
ORDER BY a.quote_id
"""

_KPIS_SQL = """
SELECT customer_class, state, month, quotes, orders, conversion, kwp,
       median_payback_years, median_irr_pct
FROM kpis_b1_b3
ORDER BY customer_class, state, month
"""


def _read(warehouse: Warehouse) -> tuple[list[dict], list[dict]]:
    with connect(warehouse.dsn, warehouse.schema) as conn:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_ANALYTICS_SQL).fetchall()
            kpis = cur.execute(_KPIS_SQL).fetchall()
    return rows, kpis


# --- choosing the proposal ----------------------------------------------------------------

def median_payback_quote(evaluated: list[dict]) -> str:
    """The evaluated proposal with the median simple payback (lower median for an even
    count; ties by quote id). When none paid back, the first evaluated by quote id."""
    paid = sorted((r for r in evaluated if r["payback_years"] is not None),
                  key=lambda r: (r["payback_years"], r["quote_id"]))
    if not paid:
        return min(r["quote_id"] for r in evaluated)
    return paid[(len(paid) - 1) // 2]["quote_id"]


def _choose(rows: list[dict], evaluated: list[dict], quote_id: str | None) -> dict:
    if quote_id is None:
        quote_id = median_payback_quote(evaluated)
    by_id = {r["quote_id"]: r for r in rows}
    if quote_id not in by_id:
        raise ValueError(f"unknown quote_id {quote_id!r}: not in propostas_analytics")
    row = by_id[quote_id]
    if row["error"] is not None:
        raise ValueError(f"quote_id {quote_id!r} could not be evaluated: {row['error']}")
    return row


# --- figures ------------------------------------------------------------------------------

def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str) -> go.Figure:
    fig.update_layout(
        title=title, separators=",.", template="plotly_white", height=440,
        margin=dict(l=70, r=30, t=60, b=60),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )
    fig.update_xaxes(title_text=xtitle)
    fig.update_yaxes(title_text=ytitle)
    return fig


def _payback_histogram(evaluated: list[dict]) -> go.Figure:
    fig = go.Figure()
    paid = [r for r in evaluated if r["payback_years"] is not None]
    top = max((r["payback_years"] for r in paid), default=1.0)
    size = 0.5 if top <= 15 else 1.0
    for cls in sorted({r["customer_class"] for r in paid}):
        values = [r["payback_years"] for r in paid if r["customer_class"] == cls]
        fig.add_trace(go.Histogram(
            x=values, name=f"{_e(cls)} ({len(values)})",
            marker_color=_CLASS_COLORS.get(cls), opacity=0.75,
            xbins=dict(start=0, end=math.ceil(top) + size, size=size),
            hovertemplate="Payback %{x} anos<br>%{y} propostas<extra>" + _e(cls) + "</extra>",
        ))
    fig.update_layout(barmode="overlay", bargap=0.05)
    return _layout(fig, "Distribuição do payback simples por classe",
                   "Payback (anos)", "Propostas")


def _years(row: dict) -> list[dict]:
    """The yearly table sorted by year, starting at year 0 (−capex) even when the pipeline
    stored operating years 1..H only."""
    yearly = sorted((y for y in (row["yearly"] or []) if y.get("year") is not None),
                    key=lambda y: y["year"])
    if yearly and yearly[0]["year"] == 1:
        first = yearly[0]
        start = float(first["cumulative_brl"]) - float(first.get("cash_flow_brl") or 0.0)
        yearly = [{"year": 0, "cumulative_brl": start,
                   "discounted_cumulative_brl": start, "cash_flow_brl": start,
                   "savings_brl": 0.0}] + yearly
    return yearly


def _cash_flow_figure(row: dict) -> go.Figure:
    yearly = _years(row)
    xs = [y["year"] for y in yearly]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=xs, y=[y["cumulative_brl"] for y in yearly], mode="lines+markers",
        name="Acumulado simples", line=dict(color="#1f77b4", width=3),
        hovertemplate="Ano %{x}<br>R$ %{y:,.2f}<extra>simples</extra>",
    ))
    fig.add_trace(go.Scatter(
        x=xs, y=[y.get("discounted_cumulative_brl") for y in yearly], mode="lines+markers",
        name="Acumulado descontado", line=dict(color="#2ca02c", width=2, dash="dash"),
        hovertemplate="Ano %{x}<br>R$ %{y:,.2f}<extra>descontado</extra>",
    ))
    if xs:
        fig.add_trace(go.Scatter(
            x=[min(xs), max(xs)], y=[0, 0], mode="lines", name="Zero",
            line=dict(color="#555", width=1), hoverinfo="skip", showlegend=False,
        ))
    for key, label, color in (("payback_years", "Payback simples", "#d62728"),
                              ("discounted_payback_years", "Payback descontado", "#9467bd")):
        value = row.get(key)
        if value is None:
            continue
        fig.add_trace(go.Scatter(
            x=[value], y=[0], mode="markers+text", name=f"{label}: {fmt_years(value)}",
            marker=dict(color=color, size=13, symbol="diamond", line=dict(color="white", width=1)),
            text=[fmt_years(value)], textposition="top left" if key == "payback_years"
            else "bottom right",
            hovertemplate=f"{label}<br>{fmt_years(value)}<extra></extra>",
        ))
    fig.update_yaxes(tickprefix="R$ ", zeroline=True, zerolinecolor="#555")
    return _layout(fig, f"Fluxo de caixa acumulado – proposta {_e(row['quote_id'])}",
                   "Ano de operação", "Fluxo de caixa acumulado (R$)")


def _figure_html(fig: go.Figure, div_id: str, *, first: bool) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=True if first else False,
                       div_id=div_id, default_height="440px",
                       config={"displaylogo": False, "responsive": True})


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 4px; } .sub { color: #666; margin: 0 0 20px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin: 0 0 20px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.card .v { font-size: 1.5em; font-weight: 600; } .card .l { color: #666; font-size: .85em; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e4e6ea; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f2f5; } .note { color: #8a5a00; } .muted { color: #666; }
"""


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{v}</div><div class="l">{label}</div></div>'
        for label, v in items) + "</div>"


def _table(headers: list[tuple[str, bool]], rows: list[list[str]], id_: str) -> str:
    head = "".join(f'<th class="n">{h}</th>' if num else f"<th>{h}</th>" for h, num in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if num else f"<td>{c}</td>"
                         for c, (_, num) in zip(row, headers)) + "</tr>"
        for row in rows)
    return f'<table id="{id_}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kpi_table(kpis: list[dict]) -> str:
    if not kpis:
        return '<p class="muted">Sem dados em kpis_b1_b3.</p>'
    headers = [("Classe", False), ("UF", False), ("Mês", False), ("Propostas", True),
               ("Pedidos", True), ("Conversão", True), ("kWp", True),
               ("Payback mediano", True), ("TIR mediana", True)]
    rows = [[_e(k["customer_class"]), _e(k["state"]), _e(fmt_month(k["month"])),
             fmt_number(k["quotes"]), fmt_number(k["orders"]), fmt_ratio(k["conversion"]),
             fmt_number(k["kwp"], 2), fmt_years(k["median_payback_years"]),
             fmt_pct(k["median_irr_pct"])] for k in kpis]
    return _table(headers, rows, "kpis")


def _error_table(failed: list[dict]) -> str:
    if not failed:
        return '<p class="muted">Todas as propostas foram avaliadas.</p>'
    headers = [("Proposta", False), ("Classe", False), ("UF", False), ("Município", False),
               ("Distribuidora", False), ("kWp", True), ("Motivo", False)]
    rows = [[_e(r["quote_id"]), _e(r["customer_class"]), _e(r["state"]),
             _e(r["municipality"] or _DASH), _e(r["utility"] or _DASH),
             fmt_number(r["system_kwp"], 2), _e(r["error"])] for r in failed]
    return _table(headers, rows, "errors")


def _chosen_details(row: dict) -> str:
    items = [
        ("Proposta", _e(row["quote_id"])),
        ("Classe / UF", f"{_e(row['customer_class'])} / {_e(row['state'])}"),
        ("Município", _e(row["municipality"] or _DASH)),
        ("Distribuidora", _e(row["utility"] or _DASH)),
        ("Potência", f"{fmt_number(row['system_kwp'], 2)} kWp"),
        ("Investimento", fmt_brl(row["capex_brl"])),
        ("VPL", fmt_brl(row["npv_brl"])),
        ("TIR", fmt_pct(row["irr_pct"])),
        ("Payback simples", fmt_years(row["payback_years"])),
        ("Payback descontado", fmt_years(row["discounted_payback_years"])),
        ("Economia no 1º ano", fmt_brl(row["year1_savings_brl"])),
        ("Conta sem / com solar (1º ano)",
         f"{fmt_brl(row['year1_bill_without_solar_brl'])} / "
         f"{fmt_brl(row['year1_bill_with_solar_brl'])}"),
    ]
    return _table([("Indicador", False), ("Valor", False)], [[k, v] for k, v in items],
                  "chosen")


def _render(rows: list[dict], kpis: list[dict], chosen: dict, default_choice: bool) -> str:
    evaluated = [r for r in rows if r["error"] is None]
    failed = [r for r in rows if r["error"] is not None]
    orders = sum(1 for r in rows if r["ordered"])
    paybacks = [r["payback_years"] for r in evaluated if r["payback_years"] is not None]
    irrs = [r["irr_pct"] for r in evaluated if r["irr_pct"] is not None]
    never = [r for r in evaluated if r["payback_years"] is None]
    by_class = {cls: sum(1 for r in never if r["customer_class"] == cls)
                for cls in sorted({r["customer_class"] for r in never})}

    cards = _cards([
        ("Propostas", fmt_number(len(rows))),
        ("Avaliadas", fmt_number(len(evaluated))),
        ("Com erro", fmt_number(len(failed))),
        ("Pedidos", fmt_number(orders)),
        ("Conversão", fmt_ratio(orders / len(rows))),
        ("Potência total", f"{fmt_number(sum(r['system_kwp'] for r in rows), 2)} kWp"),
        ("Payback mediano", fmt_years(statistics.median(paybacks) if paybacks else None)),
        ("TIR mediana", fmt_pct(statistics.median(irrs) if irrs else None)),
    ])

    if never:
        detail = ", ".join(f"{_e(cls)}: {n}" for cls, n in by_class.items())
        never_note = (f'<p class="note" id="never-paid-back">{len(never)} proposta(s) '
                      f"avaliada(s) sem payback dentro do horizonte ({detail}) — fora do "
                      "histograma.</p>")
    else:
        never_note = '<p class="muted">Todas as propostas avaliadas atingem o payback.</p>'

    why = ("escolhida por ter o payback mediano" if default_choice else "escolhida pelo usuário")
    cash_flow = (_figure_html(_cash_flow_figure(chosen), "fig-cash-flow", first=False)
                 if chosen["yearly"] else '<p class="note">Sem fluxo anual para esta proposta.</p>')
    generated = datetime.now(timezone.utc).astimezone().strftime("%d/%m/%Y %H:%M")

    return f"""<!DOCTYPE html>
<html lang="pt-BR">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Relatório de propostas – análise financeira</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>Relatório de propostas</h1>
<p class="sub">Análise financeira (Lei 14.300) das propostas B1/B3 · gerado em {generated}</p>
<section id="totais"><h2>Resumo</h2>{cards}</section>
<section id="payback"><h2>Distribuição do payback</h2>
{_figure_html(_payback_histogram(evaluated), "fig-payback", first=True)}
{never_note}
</section>
<section id="fluxo"><h2>Fluxo de caixa acumulado – proposta {_e(chosen["quote_id"])}</h2>
<p class="muted">Proposta <strong>{_e(chosen["quote_id"])}</strong>, {why}.</p>
{cash_flow}
{_chosen_details(chosen)}
</section>
<section id="kpis-b1-b3"><h2>Indicadores por classe, UF e mês</h2>{_kpi_table(kpis)}</section>
<section id="erros"><h2>Propostas não avaliadas ({len(failed)})</h2>{_error_table(failed)}</section>
</main>
</body>
</html>
"""


def build_report(warehouse: Warehouse, out: Path, quote_id: str | None = None) -> ReportSummary:
    """Write the report to ``out`` (atomically) and summarise what it holds.

    Raises ``ValueError`` when no proposal was evaluated, when ``quote_id`` is unknown and
    when the chosen proposal could not be evaluated."""
    out = Path(out)
    rows, kpis = _read(warehouse)
    evaluated = [r for r in rows if r["error"] is None]
    if not evaluated:
        raise ValueError(EMPTY_ANALYTICS)
    chosen = _choose(rows, evaluated, quote_id)
    with atomic_write(out, permissions=0o644) as fh:
        fh.write(_render(rows, kpis, chosen, default_choice=quote_id is None))
    return ReportSummary(
        path=out,
        proposals=len(rows),
        errors=sum(1 for r in rows if r["error"] is not None),
        orders=sum(1 for r in rows if r["ordered"]),
        chosen_quote_id=chosen["quote_id"],
    )
