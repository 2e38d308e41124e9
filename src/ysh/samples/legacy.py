"""Deterministic sample of a legacy ERP export (the input of the ``migrate_legacy`` flow).

Writes into ``data/sample/legacy/``:

* ``erp_export.xlsx`` — workbook of the old ERP ("SOLARIS ERP 4.2"): sheets ``LEIAME``
  (notes, not data: ignored by the flow), ``PRODUTOS`` (modules; a title row and a blank
  row above the header, so data starts on row 4), ``INVERSORES`` (string, hybrid and
  micro inverters; other legacy column names, power in kW) and ``DIVERSOS`` (batteries,
  cables, string boxes, a service and a row of an unknown branch);
* ``erp_export_precos.csv`` — the ERP's price-list export: latin-1, ``;``, decimal comma.

The products are the real ones of the sample catalog (``data/sample/catalog``), written
the legacy way: upper-case descriptions, legacy type codes (``MF``, ``IN``, ``MI`` …),
branch codes (``FIL01`` …). Some rows are broken on purpose; :data:`EXPECTED_QUARANTINE`
lists them with the reason code the flow must give. Everything is fixed data (no clock,
no randomness; the XLSX is rebuilt with fixed zip timestamps and document dates), so a
re-run writes byte-identical files::

    .venv/bin/python -m ysh.samples.legacy [OUT_DIR]
"""

from __future__ import annotations

import csv
import io
import re
import sys
import zipfile
from datetime import datetime
from pathlib import Path

WORKBOOK = "erp_export.xlsx"
PRICE_LIST = "erp_export_precos.csv"
EXPORTED_AT = datetime(2024, 3, 12, 8, 15, 0)

# --------------------------------------------------------------------------------------
# sheet contents (None = empty cell)
# --------------------------------------------------------------------------------------

PRODUTOS_TITLE = "SOLARIS ERP 4.2 - CADASTRO DE PRODUTOS - EXPORTADO EM 12/03/2024 08:15"
PRODUTOS_HEADER = ["COD_FILIAL", "COD_PROD", "DESCR", "FABRIC", "MODELO", "TIPO", "POT_W",
                   "PRECO_VENDA", "ESTOQUE", "COD_INMETRO", "UNID", "DT_CADASTRO"]
PRODUTOS_HEADER_ROW = 3  # row 1: title, row 2: blank
PRODUTOS = [
    ["FIL01", "MF-000101", "MOD FV JA SOLAR JAM72S01-345/PR 345W MONO PERC", "JA SOLAR",
     "JAM72S01-345/PR", "MF", 345, 299.02, 1240, "003811/2019", "PC", datetime(2019, 6, 3)],
    ["FIL01", "MF-000102", "MOD FV JINKO JKM405M-72HL-V 405W MONO", "JINKO", "JKM405M-72HL-V",
     "MF", 405, 351.48, 310, "004217/2020", "PC", datetime(2020, 2, 11)],
    ["FIL01", "MF-000103", "MOD FV TRINA TSM-360DE14A-II 360W POLICRISTALINO", "TRINA", "TSM-360DE14A-II",
     "MF", 360, 274.21, 0, "002954/2019", "PC", datetime(2019, 8, 19)],
    ["FIL01", "MF-000104", "MOD FV CANADIAN CS1U-415MS 416W MONO PERC", "CANADIAN", "CS1U-415MS",
     "MF", 416, 390.69, 96, "005120/2021", "PC", datetime(2021, 1, 7)],
    ["FIL02", "MF-000105", "MOD FV LONGI LR6-72BP-365M 365W MONO PERC BIFACIAL", "LONGI",
     "LR6-72BP-365M", "MB", 365, 351.55, 62, None, "PC", datetime(2020, 9, 30)],
    ["FIL02", "MF-000106", "MOD FV RISEN RSM72-6-340P 340W POLICRISTALINO", "RISEN", "RSM72-6-340P", "MF",
     340, 256.54, 2480, "003377/2019", "PC", datetime(2019, 11, 4)],
    ["FIL02", "MF-000107", "MOD FV ASTRONERGY ASM6612P-320 320W POLICRISTALINO", "CHINT ASTRONERGY",
     "ASM6612P-320", "MF", 320, 244.64, 620, "405349/2021", "PC", datetime(2021, 4, 22)],
    ["FIL03", "MF-000108", "MOD FV BYD BYD-300P6C-36 300W POLICRISTALINO", "BYD", "BYD-300P6C-36", "MF", 300,
     221.84, 144, "693022/2022", "PC", datetime(2022, 5, 16)],
    # power written in kW in the W column: 0,36 W is no module -> power_out_of_range
    ["FIL01", "MF-000109", "MOD FV JA SOLAR JAM72S01-360/PR 360W MONO PERC", "JA SOLAR",
     "JAM72S01-360/PR", "MF", 0.36, 319.95, 500, "003812/2019", "PC", datetime(2019, 6, 3)],
    # product code lost in the old system -> missing_sku
    ["FIL02", None, "MOD FV CANADIAN CS1U-410MS 411W MONO PERC", "CANADIAN", "CS1U-410MS", "MF", 411,
     377.23, 48, "005118/2021", "PC", datetime(2021, 1, 7)],
    # price stored as text with a decimal comma (a legacy text cell)
    ["FIL03", "MF-000111", "MOD FV TRINA TSM-375DE14H-II 375W MONO", "TRINA", "TSM-375DE14H-II",
     "MF", 375, "352,10", 88, "004871/2020", "PC", datetime(2020, 10, 1)],
    # lower-case type code and a padded, lower-case product code (normalized: MF-000112)
    ["FIL01", " mf-000112 ", "MOD FV JINKO JKM410M-72HL 410W MONO", "JINKO", "JKM410M-72HL", "mf",
     410, 362.36, 144, "004219/2020", "PC", datetime(2020, 2, 11)],
]

INVERSORES_HEADER = ["FILIAL", "COD_PROD", "DESCRICAO", "FABRICANTE", "MODELO", "TIPO", "POT_KW",
                     "PR_VENDA", "QTD_ESTOQUE", "REG_INMETRO"]
INVERSORES = [
    ["FIL01", "IN-000201", "INV GROWATT 5000-MTL-US 4,6KW MONOFASICO", "GROWATT", "5000-MTL-US", "IN",
     4.6, 4270.56, 0, "900253/2020"],
    ["FIL01", "IN-000202", "INV SOLIS 3K-2G-US 2,99KW MONOFASICO", "GINLONG SOLIS", "3K-2G-US", "IN",
     2.99, 3112.01, 2, "414763/2019"],
    ["FIL02", "IN-000203", "INV FRONIUS IG-PLUS-11.4-1-UNI 11,4KW MONOFASICO", "FRONIUS",
     "IG-Plus-11.4-1-UNI", "IN", 11.4, 12258.09, 2, "345568/2023"],
    ["FIL02", "IN-000204", "INV SUNGROW SG60KU 60KW TRIFASICO", "SUNGROW", "SG60KU", "IN", 60,
     51428.42, 1, "413925/2024"],
    ["FIL03", "IN-000205", "INV HUAWEI SUN2000-25KTL-US 25KW TRIFASICO", "HUAWEI", "SUN2000-25KTL-US",
     "IN", 25, 22957.87, 3, "402113/2022"],
    ["FIL01", "IN-000206", "INV SMA STP20000TL-US-10 20KW TRIFASICO", "SMA", "STP20000TL-US-10", "IN",
     20, 18841.25, 1, "399870/2021"],
    ["FIL01", "IH-000207", "INV HIBRIDO DEYE SUN-5K-SG03LP1 5KW MONOFASICO", "DEYE", "SUN-5K-SG03LP1",
     "IH", 5, 9890.00, 6, "512044/2023"],
    ["FIL02", "MI-000208", "MICROINV HOYMILES MI-1200T 1,2KW", "HOYMILES", "MI-1200T", "MI", 1.21,
     2655.45, 4, "043881/2023"],
    ["FIL03", "MI-000209", "MICROINV APSYSTEMS YC500A 500W", "APSYSTEMS", "YC500A", "MI", 0.5,
     1575.02, 60, "353008/2022"],
    ["FIL03", "MI-000210", "MICROINV ENPHASE IQ7X-96-X-US 315W", "ENPHASE", "IQ7X-96-x-US", "MI",
     0.315, 1419.60, 8, "248351/2021"],
    # power written in W in the kW column: 7 020 kW -> power_out_of_range
    ["FIL02", "IN-000211", "INV SOLAREDGE SE7000 7KW MONOFASICO", "SOLAREDGE", "SE7000", "IN", 7020,
     8630.55, 60, "340724/2020"],
    # a credit note exported as a negative sale price -> negative_price
    ["FIL01", "IN-000212", "INV HUAWEI SUN2000-11.4KTL-USL0 11,4KW MONOFASICO", "HUAWEI",
     "SUN2000-11.4KTL-USL0", "IN", 11.4, -11764.18, 2, "402118/2022"],
]

DIVERSOS_HEADER = ["COD_FILIAL", "COD_PROD", "DESCR", "FABRIC", "TIPO", "POT_W", "PRECO_VENDA",
                   "ESTOQUE"]
DIVERSOS = [
    ["FIL01", "BT-000301", "BATERIA BYD BATTERY-BOX PREMIUM HVS 5.1", "BYD", "BT", None, 18143.01, 3],
    ["FIL02", "BT-000302", "BATERIA BYD BATTERY-BOX PREMIUM HVM 11.0", "BYD", "BT", None, 35880.25, 1],
    ["FIL01", "CB-000303", "CABO SOLAR 6MM2 PRETO (METRO)", "COBRECOM", "CB", None, 6.91, 5000],
    ["FIL01", "OU-000304", "CONECTOR MC4 PAR MACHO + FEMEA", "STAUBLI", "OU", None, 25.10, 800],
    ["FIL03", "SB-000305", "STRING BOX 2 ENTRADAS / 2 SAIDAS 1000V", "CLAMPER", "SB", None, 674.77, 12],
    # services had type SV in the old ERP; they are not catalog items -> unknown_category
    ["FIL02", "SV-000306", "INSTALACAO SISTEMA 5KWP (SERVICO)", None, "SV", None, 4500.00, None],
    # branch FIL09 was closed before the migration: no distributor -> unknown_distributor
    ["FIL09", "ES-000307", "ESTRUTURA TELHADO CERAMICO 4 MODULOS", "ROMAGNOLE", "ES", None, 389.90, 40],
]

LEIAME = [
    ["SOLARIS ERP 4.2 - EXPORTACAO PARA MIGRACAO"],
    ["Gerado em 12/03/2024 08:15 pelo usuario MIGRACAO"],
    [None],
    ["Abas: PRODUTOS (modulos), INVERSORES, DIVERSOS (baterias, cabos, acessorios)"],
    ["TIPO: MF/MB modulo, IN/IH inversor, MI microinversor, BT bateria, CB/ES/SB/OU outros, SV servico"],
    ["COD_FILIAL: FIL01 Sol Nascente, FIL02 Casa do Integrador, FIL03 Lumen Solar"],
]

PRECOS_HEADER = ["COD_FILIAL", "COD_PROD", "DESCR", "FABRIC", "MODELO", "TIPO", "POT_W",
                 "PRECO_VENDA", "ESTOQUE", "COD_INMETRO"]
PRECOS = [
    ["FIL01", "MF-000401", "MÓDULO FV JA SOLAR JAM72S01-370/PR 370W MONO PERC", "JA SOLAR",
     "JAM72S01-370/PR", "MF", "370", "338,68", "72", "243438/2019"],
    ["FIL01", "MF-000402", "MÓDULO FV JINKO JKM410M-72HL-V 410W MONO", "JINKO", "JKM410M-72HL-V", "MF",
     "410", "362,90", "144", "004220/2020"],
    ["FIL02", "MF-000403", "MÓDULO FV CANADIAN CS1U-405MS 406W MONO PERC", "CANADIAN SOLAR",
     "CS1U-405MS", "MF", "406", "396,62", "210", ""],
    ["FIL02", "MF-000404", "MÓDULO FV LONGI LR6-72PE-340M 340W MONO PERC", "LONGI", "LR6-72PE-340M",
     "MF", "340", "304,01", "72", "003390/2019"],
    ["FIL03", "IN-000405", "INVERSOR SOLAREDGE SE5000H-US 5KW MONOFÁSICO", "SOLAREDGE", "SE5000H-US",
     "IN", "5000", "6.027,04", "4", "340719/2020"],
    ["FIL03", "IN-000406", "INVERSOR SOLIS GCI-5K-2G-W-US 4,99KW MONOFÁSICO", "SOLIS", "GCI-5K-2G-W-US",
     "IN", "4990", "5.653,00", "6", "414770/2021"],
    ["FIL01", "BT-000407", "BATERIA BYD BATTERY-BOX PREMIUM HVS 7.7", "BYD", "", "BT", "", "25.146,21",
     "2", ""],
    # price list carried a refund as a negative price -> negative_price
    ["FIL02", "MF-000408", "MÓDULO FV JINKO JKM405M-72HL-V 405W MONO", "JINKO", "JKM405M-72HL-V", "MF",
     "405", "-351,48", "0", "004217/2020"],
    # XX: a type code that is in no table of the old ERP -> unknown_category
    ["FIL01", "XX-000409", "KIT FIXAÇÃO SOLO 10 MÓDULOS", "ROMAGNOLE", "", "XX", "", "1.890,00", "5", ""],
    ["FIL03", "MI-000410", "MICROINVERSOR HOYMILES HMS-2000-4T 2KW", "HOYMILES", "HMS-2000-4T", "MI",
     "2000", "2.980,00", "15", "043902/2023"],
    ["FIL02", "MF-000411", "MÓDULO FV TRINA TSM-355DEG14C-07-II 355W MONO BIFACIAL", "TRINA",
     "TSM-355DEG14C-07-II", "MB", "355", "379,70", "sob consulta", "002961/2019"],
]

#: every deliberately broken row: (source_file as stored, line in the sheet/file, reason code).
EXPECTED_QUARANTINE: tuple[tuple[str, int, str], ...] = (
    (f"legacy:{WORKBOOK}#PRODUTOS", 12, "power_out_of_range"),
    (f"legacy:{WORKBOOK}#PRODUTOS", 13, "missing_sku"),
    (f"legacy:{WORKBOOK}#INVERSORES", 12, "power_out_of_range"),
    (f"legacy:{WORKBOOK}#INVERSORES", 13, "negative_price"),
    (f"legacy:{WORKBOOK}#DIVERSOS", 7, "unknown_category"),
    (f"legacy:{WORKBOOK}#DIVERSOS", 8, "unknown_distributor"),
    (f"legacy:{PRICE_LIST}", 9, "negative_price"),
    (f"legacy:{PRICE_LIST}", 10, "unknown_category"),
)

#: data rows per source (LEIAME is not data).
EXPECTED_ROWS: dict[str, int] = {
    f"{WORKBOOK}#PRODUTOS": len(PRODUTOS),
    f"{WORKBOOK}#INVERSORES": len(INVERSORES),
    f"{WORKBOOK}#DIVERSOS": len(DIVERSOS),
    PRICE_LIST: len(PRECOS),
}
EXPECTED_ITEMS = sum(EXPECTED_ROWS.values()) - len(EXPECTED_QUARANTINE)


# --------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------


def workbook_bytes() -> bytes:
    """The workbook, byte-for-byte reproducible."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    leiame = wb.active
    leiame.title = "LEIAME"
    for row in LEIAME:
        leiame.append(row)

    produtos = wb.create_sheet("PRODUTOS")
    produtos.append([PRODUTOS_TITLE])
    produtos.append([])
    produtos.append(PRODUTOS_HEADER)
    for row in PRODUTOS:
        produtos.append(row)
    for cell in produtos["L"][PRODUTOS_HEADER_ROW:]:
        cell.number_format = "DD/MM/YYYY"

    for title, header, rows in (("INVERSORES", INVERSORES_HEADER, INVERSORES),
                                ("DIVERSOS", DIVERSOS_HEADER, DIVERSOS)):
        ws = wb.create_sheet(title)
        ws.append(header)
        for row in rows:
            ws.append(row)
    for ws in wb.worksheets[1:]:
        header_row = PRODUTOS_HEADER_ROW if ws.title == "PRODUTOS" else 1
        for cell in ws[header_row]:
            cell.font = Font(bold=True)

    wb.properties.creator = "SOLARIS ERP 4.2"
    buffer = io.BytesIO()
    wb.save(buffer)
    return _deterministic_zip(buffer.getvalue())


def _deterministic_zip(data: bytes) -> bytes:
    """openpyxl stamps the save time into ``docProps/core.xml`` and the zip entries; pin
    both to :data:`EXPORTED_AT`."""
    stamp = EXPORTED_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)",
                    lambda m: m.group(1) + stamp.encode() + m.group(3), content)
            entry = zipfile.ZipInfo(info.filename, date_time=EXPORTED_AT.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, content)
    return out.getvalue()


def price_list_bytes() -> bytes:
    """The price-list CSV: latin-1, ``;``, decimal comma, CRLF (as the old ERP wrote it)."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(PRECOS_HEADER)
    writer.writerows(PRECOS)
    return text.getvalue().encode("latin-1")


def write_sample(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in ((WORKBOOK, workbook_bytes()), (PRICE_LIST, price_list_bytes())):
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)
    return written


def default_out_dir() -> Path:
    from ..db import data_path

    return data_path("sample", "legacy")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else default_out_dir()
    for path in write_sample(out_dir):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
