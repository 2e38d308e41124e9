"""PV physics shared by the expected-power model (:mod:`ysh.om.expected`) and the telemetry
simulator (:mod:`ysh.samples.om_telemetry`): irradiance on the plane of array to AC power.

One chain, vectorised with numpy/pvlib:

1. :func:`plane_of_array` - Hay-Davies transposition to the plant's tilt and azimuth
   (azimuth clockwise from north), physical IAM on the beam: the POA irradiance and the
   effective irradiance that reaches the cells;
2. :func:`dc_per_installed_w` - SAPM cell temperature (open rack, glass/polymer), PVWatts
   DC (:data:`GAMMA_PDC`) per installed DC watt, times ``1 -`` :data:`DC_LOSSES`;
3. :func:`inverter_ac` - PVWatts inverter (part-load efficiency, :data:`ETA_INV_NOM`
   nominal) capped at the rating; zero below :data:`START_THRESHOLD` of the DC rating.

What stays with the simulator (the sample): sun position, clear sky, clouds, ambient
temperature and wind, noise, faults. What stays with the model: its clear-sky
assumptions (25 °C ambient, 1 m/s wind) and the time averaging. The model shares the
simulator's formulas and constants by design (it is the plant's nominal behaviour); an
evaluation on simulated data therefore measures the rules against clouds, noise and
faults, not model error.
"""

from __future__ import annotations

import numpy as np
import pvlib

__all__ = [
    "ALBEDO",
    "DC_LOSSES",
    "ETA_INV_NOM",
    "GAMMA_PDC",
    "START_THRESHOLD",
    "TEMPERATURE_PARAMETERS",
    "dc_per_installed_w",
    "inverter_ac",
    "plane_of_array",
]

DC_LOSSES = 0.11  # soiling, wiring, module mismatch, LID, nameplate (PVWatts-like, no inverter)
GAMMA_PDC = -0.0037
ETA_INV_NOM = 0.965
START_THRESHOLD = 0.005  # fraction of the inverter's DC rating below which it does not run
ALBEDO = 0.2
TEMPERATURE_PARAMETERS = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]


def plane_of_array(tilt: float, azimuth: float, zenith, sun_azimuth, dni, ghi, dhi, dni_extra
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(poa_global, effective)`` [W/m²]: the plane-of-array irradiance (Hay-Davies,
    :data:`ALBEDO`) and the part that reaches the cells (beam through the physical IAM,
    plus the diffuse); both ≥ 0, NaN (sun below the horizon) read as 0."""
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, zenith, sun_azimuth, dni, ghi, dhi,
        dni_extra=dni_extra, albedo=ALBEDO, model="haydavies")
    poa_global = np.clip(np.nan_to_num(np.asarray(poa["poa_global"], dtype=float)), 0.0, None)
    poa_direct = np.clip(np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float)), 0.0, None)
    poa_diffuse = np.clip(poa_global - poa_direct, 0.0, None)
    aoi = pvlib.irradiance.aoi(tilt, azimuth, zenith, sun_azimuth)
    iam = np.nan_to_num(np.asarray(pvlib.iam.physical(aoi), dtype=float))
    return poa_global, poa_direct * iam + poa_diffuse


def dc_per_installed_w(poa_global, effective, t_air, wind) -> np.ndarray:
    """DC watts per installed DC watt: SAPM cell temperature from ``poa_global``, ambient
    ``t_air`` [°C] and ``wind`` [m/s]; PVWatts DC on ``effective``; after :data:`DC_LOSSES`."""
    t_cell = np.asarray(pvlib.temperature.sapm_cell(poa_global, t_air, wind, **TEMPERATURE_PARAMETERS),
                        dtype=float)
    dc = np.clip(np.asarray(pvlib.pvsystem.pvwatts_dc(effective, t_cell, 1.0, GAMMA_PDC), dtype=float),
                 0.0, None)
    return dc * (1.0 - DC_LOSSES)


def inverter_ac(dc_w, rated_w) -> tuple[np.ndarray, np.ndarray]:
    """``(ac, running)``: the AC power [W] of inverters rated ``rated_w`` [W AC] fed
    ``dc_w`` [W] (PVWatts inverter; 0 where it does not run), and where it runs (DC at
    least :data:`START_THRESHOLD` of its DC rating ``rated_w /`` :data:`ETA_INV_NOM`)."""
    pdc0 = np.asarray(rated_w, dtype=float) / ETA_INV_NOM
    ac = np.asarray(pvlib.inverter.pvwatts(dc_w, pdc0, eta_inv_nom=ETA_INV_NOM), dtype=float)
    running = dc_w >= START_THRESHOLD * pdc0
    return np.where(running, ac, 0.0), running
