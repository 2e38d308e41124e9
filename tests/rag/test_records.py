"""Live business records: catalog products and current B1/B3 tariffs rendered as short
Portuguese documents, read from a real warehouse, and streamed into Pathway only when
their text changes."""

import threading
from datetime import date, datetime, timezone

import pytest

from ysh.rag import records
from ysh.tariffs.aneel import FlagMonth
from ysh.tariffs.book import TariffAt

from ..conftest import query, wait_for

TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)

JINKO = {"product_key": "Jinko Solar|JKM405M72HLV", "brand": "Jinko Solar", "model": "JKM405M-72HL-V",
         "category": "module", "power_w": 405.0, "offers": 2, "distributors": 2, "min_price_brl": 351.48,
         "median_price_brl": 370.0, "max_price_brl": 388.52, "updated_at": NOW}
OFFERS = [
    {"distributor": "Casa do Integrador", "sku": "CI-72263", "category": "module", "brand": "Jinko Solar",
     "model": "JKM405M-72HL-V", "description": "Painel Solar Jinko 405W Mono", "power_w": 405.0,
     "price_brl": 388.52, "stock_units": 0, "inmetro_status": "ok", "efficiency_pct": 20.7,
     "technology": "Monocristalino", "voc_v": 50.1, "isc_a": 10.48, "vmp_v": 42.0, "imp_a": 9.65},
    {"distributor": "Lumen Solar", "sku": "LS-9", "category": "module", "brand": "Jinko Solar",
     "model": "JKM405M-72HL-V", "price_brl": 351.48, "stock_units": 120, "inmetro_status": "ok"},
]
CEMIG_B1 = TariffAt("CEMIG-D", "B1", "Convencional", TODAY, 0.28051, 0.40542, 0.21034, date(2026, 5, 28),
                    date(2027, 5, 27), "REH 3.199/2026")


def test_a_product_reads_like_a_catalog_entry():
    text = records.render_product(JINKO, OFFERS)
    assert text.startswith("Módulo fotovoltaico Jinko Solar JKM405M-72HL-V de 405 W.")
    assert "2 distribuidoras (2 ofertas)" in text and "R$ 351,48 a R$ 388,52" in text
    assert "eficiência 20,7 %" in text and "tecnologia Monocristalino" in text
    # cheapest offer first, with its SKU and stock
    assert text.index("LS-9") < text.index("CI-72263") and "120 unidades em estoque" in text
    assert "sem estoque" in text


def test_an_inverter_power_is_given_in_kilowatts():
    inverter = dict(JINKO, category="inverter", brand="Sungrow", model="SG5.0RS", power_w=5000.0,
                    min_price_brl=4999.9, max_price_brl=4999.9, offers=1, distributors=1)
    text = records.render_product(inverter, [])
    assert text.startswith("Inversor Sungrow SG5.0RS de 5 kW.") and "Preço R$ 4.999,90." in text
    assert "1 distribuidora (1 oferta)" in text


def test_a_tariff_reads_with_its_values_validity_and_flag():
    flag = FlagMonth(date(2026, 11, 1), "Amarela", 0.01885, "bandeiras.csv", 7)
    text = records.render_tariff(CEMIG_B1, flag)
    assert text.startswith("Tarifa B1 (residencial, baixa tensão) da distribuidora CEMIG-D")
    assert "TE (tarifa de energia): R$ 0,28051 por kWh" in text and "Total TE + TUSD: R$ 0,68593 por kWh" in text
    assert "TUSD Fio B: R$ 0,21034" in text and "vigente desde 28/05/2026 até 27/05/2027" in text
    assert "Bandeira tarifária de novembro de 2026: Amarela, acréscimo de R$ 0,01885 por kWh" in text
    assert "total com bandeira R$ 0,70478" in text


def test_paths_are_stable_and_readable():
    assert records.product_path("Jinko Solar|JKM405M72HLV") == "catalog://produto/jinko-solar/jkm405m72hlv"
    assert records.tariff_path("CEMIG-D", "b3") == "tarifa://cemig-d/B3"
    assert records.item_path("Casa do Integrador", "CI-1") == "catalog://item/casa-do-integrador/CI-1"


def test_only_changed_texts_are_sent_and_vanished_records_deleted():
    a = records.Record("catalog://produto/a", "produto", "A", "texto a", None)
    b = records.Record("catalog://produto/b", "produto", "B", "texto b v2", None)
    changes = records.diff_records({"catalog://produto/a": "texto a", "catalog://produto/b": "texto b",
                                    "tarifa://x/B1": "t"}, [a, b])
    assert [r.path for r in changes.upserts] == ["catalog://produto/b"]
    assert changes.deletions == ["tarifa://x/B1"]


# ---- the warehouse ---------------------------------------------------------------------------
def insert_catalog(warehouse, product=JINKO, offers=OFFERS):
    cols = list(product)
    query(warehouse, f"INSERT INTO products ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                     "RETURNING 1", tuple(product[c] for c in cols))
    for i, offer in enumerate(offers):
        row = dict(offer, product_key=product["product_key"] if offer.get("brand") else None,
                   source_file="feed.csv", source_line=i + 2, ingested_at=NOW)
        row.setdefault("inmetro_status", "missing")
        cols = list(row)
        query(warehouse, f"INSERT INTO items_normalized ({', '.join(cols)}) VALUES "
                         f"({', '.join(['%s'] * len(cols))}) RETURNING 1", tuple(row[c] for c in cols))


def insert_tariff(warehouse, utility, subgroup, te, tusd, valid_from=date(2026, 5, 28), valid_to=None,
                  tariff_class="Residencial", subclass="Residencial", base="aplicacao"):
    key = f"{utility}|{base}|{subgroup}|conv|{tariff_class}|{subclass}|nsa|nsa|MWh|nsa".lower()
    query(warehouse, "INSERT INTO tarifas_normalized (key_text, utility, valid_from, valid_to, base, subgroup, "
                     "modality, tariff_class, subclass, detail, post, unit, accessing_agent, tusd_brl_per_kwh, "
                     "te_brl_per_kwh, resolution, source_file, line) VALUES (%s, %s, %s, %s, %s, %s, 'Convencional', "
                     "%s, %s, 'Não se aplica', 'Não se aplica', 'MWh', 'Não se aplica', %s, %s, 'REH 3.199', "
                     "'tarifas.csv', 2) RETURNING 1",
          (key, utility, valid_from, valid_to, base, subgroup, tariff_class, subclass, tusd, te))


def insert_tariffs(warehouse):
    insert_tariff(warehouse, "CEMIG-D", "B1", 0.28051, 0.40542)
    insert_tariff(warehouse, "CEMIG-D", "B1", 0.25, 0.38, valid_from=date(2025, 5, 28), valid_to=date(2026, 5, 27))
    insert_tariff(warehouse, "CEMIG-D", "B1", 0.27, 0.39, base="economica")
    insert_tariff(warehouse, "CEMIG-D", "B3", 0.29, 0.41, tariff_class="Comercial", subclass="Comercial")
    insert_tariff(warehouse, "ENEL SP", "B1", 0.3, 0.35)
    query(warehouse, "INSERT INTO tarifas_fio_b (key_text, utility, base, subgroup, modality, tariff_class, subclass, "
                     "detail, post, valid_from, fio_b_brl_per_kwh, resolution, source_file, line) VALUES "
                     "('k', 'CEMIG-D', 'aplicacao', 'B1', 'Convencional', 'Não se aplica', 'Não se aplica', "
                     "'Não se aplica', 'Não se aplica', '2026-05-28', 0.21034, 'REH', 'c.csv', 2) RETURNING 1")
    query(warehouse, "INSERT INTO tarifas_bandeiras (month, flag, addon_brl_per_kwh, source_file, line) VALUES "
                     "('2026-11-01', 'Amarela', 0.01885, 'b.csv', 2) RETURNING 1")


@pytest.mark.integration
def test_records_from_the_warehouse(warehouse):
    insert_catalog(warehouse)
    insert_catalog(warehouse, product=dict(JINKO, product_key="Sungrow|SG50RS", brand="Sungrow", model="SG5.0RS",
                                           category="inverter", power_w=5000.0),
                   offers=[{"distributor": "Lumen Solar", "sku": "LS-INV", "category": "inverter",
                            "brand": "Sungrow", "model": "SG5.0RS", "price_brl": 4999.9, "stock_units": 3},
                           {"distributor": "Lumen Solar", "sku": "LS-CABO", "category": "other",
                            "description": "Cabo solar 6 mm² vermelho", "price_brl": 5.9, "stock_units": 900}])
    insert_tariffs(warehouse)
    found = {r.path: r for r in records.records_from_warehouse(warehouse, TODAY)}
    assert set(found) == {"catalog://produto/jinko-solar/jkm405m72hlv", "catalog://produto/sungrow/sg50rs",
                          "catalog://item/lumen-solar/LS-CABO", "tarifa://cemig-d/B1", "tarifa://cemig-d/B3",
                          "tarifa://enel-sp/B1"}
    jinko = found["catalog://produto/jinko-solar/jkm405m72hlv"]
    assert "CI-72263" in jinko.text and jinko.kind == "produto" and jinko.updated_at == NOW
    assert jinko.metadata()["title"] == "Módulo fotovoltaico Jinko Solar JKM405M-72HL-V"
    assert jinko.metadata()["modified_at"] == int(NOW.timestamp())
    b1 = found["tarifa://cemig-d/B1"]
    assert "R$ 0,28051" in b1.text and "TUSD Fio B: R$ 0,21034" in b1.text and "Amarela" in b1.text
    assert b1.title == "Tarifa B1 CEMIG-D" and b1.kind == "tarifa" and b1.updated_at is not None
    assert "Fio B" not in found["tarifa://enel-sp/B1"].text  # no Fio B published for ENEL SP
    assert "Cabo solar" in found["catalog://item/lumen-solar/LS-CABO"].text
    # the tariff of 2025 is the one in force a year earlier
    earlier = {r.path: r for r in records.records_from_warehouse(warehouse, date(2025, 11, 26))}
    assert "R$ 0,25000" in earlier["tarifa://cemig-d/B1"].text and "tarifa://enel-sp/B1" not in earlier


@pytest.mark.integration
def test_an_empty_warehouse_has_no_records(warehouse):
    assert records.records_from_warehouse(warehouse, TODAY) == []


@pytest.mark.integration
def test_the_live_table_follows_the_warehouse(warehouse):
    import pathway as pw

    from ysh.pw_runtime import TableCollector, fresh_graph

    fresh_graph()
    insert_catalog(warehouse)
    subject = records.live_records_subject(warehouse, poll_s=0.2, today=TODAY)
    table = records.live_records_table(warehouse, subject=subject)
    assert set(table.schema.column_names()) == {"data", "_metadata"}
    collected = TableCollector(table, "live")
    changes = []
    pw.io.subscribe(table, on_change=lambda key, row, time, is_addition: changes.append(
        (row["_metadata"]["path"].as_str(), is_addition)), name="changes")

    def docs():
        return {r["_metadata"]["path"].as_str(): r["data"].decode() for r in collected.values()}

    runner = threading.Thread(target=pw.run, kwargs={"monitoring_level": pw.MonitoringLevel.NONE}, daemon=True)
    runner.start()
    try:
        wait_for(lambda: "catalog://produto/jinko-solar/jkm405m72hlv" in docs(), timeout=30, what="the product")
        insert_tariffs(warehouse)  # several commits: the flag, inserted last, says all are visible
        wait_for(lambda: {"tarifa://cemig-d/B1", "tarifa://cemig-d/B3", "tarifa://enel-sp/B1"} <= docs().keys()
                 and "Amarela" in docs()["tarifa://cemig-d/B1"], timeout=30, what="the tariffs")
        polls = subject.polls
        wait_for(lambda: subject.polls >= polls + 1, timeout=30, what="one more poll")
        polls, sent = subject.polls, len(changes)
        wait_for(lambda: subject.polls >= polls + 3, timeout=30, what="more polls")
        assert len(changes) == sent  # nothing changed: nothing sent
        # the catalog job rewrites products.updated_at on every run: same text, nothing sent
        query(warehouse, "UPDATE products SET updated_at = now() RETURNING 1")
        polls = subject.polls
        wait_for(lambda: subject.polls >= polls + 3, timeout=30, what="more polls")
        assert len(changes) == sent
        query(warehouse, "UPDATE items_normalized SET price_brl = 299.0, ingested_at = now() WHERE sku = 'LS-9' "
                         "RETURNING 1")
        wait_for(lambda: "R$ 299,00" in docs()["catalog://produto/jinko-solar/jkm405m72hlv"], timeout=30,
                 what="the new price")
        query(warehouse, "DELETE FROM tarifas_normalized WHERE utility = 'ENEL SP' RETURNING 1")
        wait_for(lambda: "tarifa://enel-sp/B1" not in docs(), timeout=30, what="the deleted tariff")
        metadata = next(r["_metadata"].value for r in collected.values()
                        if r["_metadata"]["path"].as_str() == "tarifa://cemig-d/B3")
        assert metadata["kind"] == "tarifa" and metadata["title"] == "Tarifa B3 CEMIG-D"
        assert isinstance(metadata["modified_at"], int)
    finally:
        subject.stop()
        runner.join(30)
    assert not runner.is_alive()
