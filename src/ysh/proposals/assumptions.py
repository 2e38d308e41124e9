"""What a quote does not carry: the platform's assumptions for evaluating a proposal.

The defaults and limits here are the only ones: the settings
(``settings.proposals.assumptions``, variables ``YSH_PROPOSAL_*``) read this class, and
docs/proposals.md explains each value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

Pct = Annotated[float, Field(ge=0, le=100)]


@dataclass(frozen=True)
class Assumptions:
    simultaneity_b1: Annotated[float, Field(ge=0, le=1, description="Share of generation consumed on the spot, B1.")] = 0.30
    simultaneity_b3: Annotated[float, Field(ge=0, le=1, description="Share of generation consumed on the spot, B3.")] = 0.50
    pis_cofins_pct: Annotated[float, Field(ge=0, lt=100)] = 6.0
    tariff_escalation_pct: Annotated[float, Field(ge=-50, le=100)] = 5.0
    discount_rate_pct: Annotated[float, Field(gt=-100, le=100)] = 10.0
    om_pct_capex: Pct = 1.0
    inverter_replacement_year: Annotated[int, Field(ge=1, le=50)] = 12
    inverter_replacement_pct: Pct = 15.0
    installation_brl_per_kwp: Annotated[float, Field(
        ge=0, description="Labour, structure and cabling on top of the quoted equipment.")] = 1200.0
    losses_pct: Annotated[float, Field(ge=0, lt=100, description="PVWatts system losses.")] = 14.0
