"""Small feeds in the distributors' real styles, written by tests into a landing folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

SOL_NASCENTE = (
    "Código;Descrição;Marca;Modelo;Categoria;Potência (Wp);Preço;Estoque;Registro Inmetro\n"
    "sn 001;Módulo Fotovoltaico JA Solar 550W Mono PERC;JA-SOLAR;JAM72S30-550/MR;Módulo Fotovoltaico;550;R$ 612,50;120;004567/2023\n"
    "SN002;Inversor Growatt 5kW;GROWATT;MIN-5000TL-X;Inversor;5.000;R$ 5.149,90;8;001234/2022\n"
    ";Módulo sem código;JINKO;JKM575N-72HL4-V;Módulo;575;R$ 700,00;1;\n"
    "SN003;Módulo Jinko Tiger Neo;JINKO;JKM575N-72HL4-V;Módulo;2000;R$ 700,00;1;\n"
)
ENERGIA_VERDE = [
    {"sku": "ev-1", "brand": "ja solar", "model": "JAM72S30 550 MR", "category": "module",
     "power_w": 550, "price": 589.9, "stock": 40, "inmetro": "004567/2023"},
    {"sku": "ev-2", "brand": "Jinkosolar", "model": "JKM575N-72HL4-V", "category": "module",
     "power_w": "575", "price": "699.00", "stock": 12, "inmetro": ""},
    {"sku": "ev-3", "brand": "Enphase", "model": "IQ8M", "category": "microinverter",
     "power_w": 330, "price": -10, "stock": 3},
]
FOTOVOLT = [
    {"referencia": "FS-10", "produto": "Inversor Growatt MIN-5000TL-X 5kW Monofásico 2 MPPT", "preco_brl": "4.990,00", "qtd": 4},
    {"referencia": "FS-11", "produto": "Serviço de instalação", "preco_brl": "1.500,00", "qtd": 1},
]


def write_feeds(landing: Path) -> dict[str, Path]:
    landing.mkdir(parents=True, exist_ok=True)
    paths = {
        "sol_nascente": landing / "sol_nascente.csv",
        "energia_verde": landing / "energia_verde.json",
        "fotovolt": landing / "fotovolt.jsonl",
    }
    paths["sol_nascente"].write_bytes(SOL_NASCENTE.encode("cp1252"))
    paths["energia_verde"].write_text(json.dumps(ENERGIA_VERDE), encoding="utf-8")
    paths["fotovolt"].write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in FOTOVOLT) + "\n",
                                 encoding="utf-8")
    return paths


def rewrite(path: Path, content: bytes) -> None:
    """Replace a file atomically, with a modification time that certainly moved forward."""
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_bytes(content)
    later = max(time.time(), path.stat().st_mtime + 2) if path.exists() else time.time()
    os.utime(tmp, (later, later))
    tmp.replace(path)
