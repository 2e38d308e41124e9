"""O&M rules over 5-minute inverter windows, and the alert lifecycle (pure Python, no I/O).

Inputs are :class:`WindowStat` rows (one per inverter and 5-minute tumbling window, the
``om_inverter_5min`` table). Rule functions look at one inverter's ordered window history
plus its *peers* (the plant's other inverters) at the same window starts, and return a
:class:`RuleState` (``active``, ``details``, ``at`` = the time the verdict refers to).
:func:`advance` folds rule states into open/resolved :class:`Alert` s.

Thresholds (:class:`Thresholds`, fractions are of the inverter's rated AC power):

==========================  ========  =====================================================
field                       default   meaning
==========================  ========  =====================================================
daylight_fraction           0.10      a window is *daylight* when expected ≥ 10 % of rated
pi_floor_fraction           0.01      PI = avg/expected is ``None`` when expected < 1 % rated
trip_expected_fraction      0.20      trip needs expected ≥ 20 % of rated …
trip_output_fraction        0.01      … while no sample exceeds 1 % of rated (max power) …
trip_peer_min_pi            0.50      … and the median PI of the *producing* peers ≥ 0.5
                                      (a peer is producing when its max power > 1 % of
                                      rated, so a second tripped inverter does not hide
                                      the first; no peer window → "alone": a measured
                                      irradiance, or a stop from production, see
                                      ``stop_*`` below; peers all down → ``plant_outage``)
under_pi_max                0.75      underperforming window: PI < 0.75 (only counted when
                                      producing peers' median PI ≥ 0.75 or there are none:
                                      a plant-wide low PI is weather/model, not the inverter)
under_peer_ratio_max        0.80      … or specific power (avg/rated) < 0.8 × median of the
                                      producing peers' specific power
under_windows               3         … for the last 3 daylight windows (night windows are
                                      skipped, so the verdict holds overnight)
comm_loss_after             15 min    silence (since the last sample) that counts as lost
gap_data_min_fraction       0.50      after a gap: counter advanced ≥ 50 % of the reference
                                      energy → ``data_gap`` (it produced, only data was lost)
gap_outage_max_fraction     0.10      counter advanced < 10 % of the reference → ``outage``;
                                      in between → ``partial_outage``
counter_resolution_kwh      0.1       reference energy below this → ``unknown`` (the
                                      counter cannot tell; e.g. a night-time gap)
frozen_samples              10        frozen: ≥ 10 consecutive identical ac_power_w readings
                                      in daylight windows (runs at clipping level excluded)
clipping_fraction           0.98      clipping: max power ≥ 98 % of rated …
clipping_windows            2         … in ≥ 2 consecutive windows (severity info)
night_silence_after         16 h      a silence that began outside daylight (loggers that
                                      sleep at night) counts as comm loss / plant offline
                                      only after this long, unless producing peers report
frozen_counter_fraction     0.10      a frozen run at clipping level is still frozen when
                                      the counter advanced < 10 % of what the value implies
limit_flat_fraction         0.01      active-power limit (export limit, curtailment): ≥ 2
                                      contiguous windows with min ≥ 99 % of max, same level
                                      (± 1 %), below the clipping level …
limit_margin                0.05      … while the available power (peers' specific power,
                                      else expected) is ≥ 5 % above that level …
limit_swing_fraction        0.02      … and moved by ≥ 2 % of rated (or sat at the peers'
                                      rating); then underperformance judges against the
                                      limit and clipping reports ``export_limit``
limit_memory_windows        12        the limit stays known while the output touches it at
                                      least once every 12 windows (clouds under it)
night_tare_w                50 W      night tare: ``ac_power_w`` (or ``dc_power_w``) down to
night_tare_fraction         0.01      −max(50 W, 1 % of rated) reads as 0 W (validation);
                                      more negative stays ``negative_power``
limit_counter_tolerance     0.20      a constant run is a real, held output (``power_limited``,
                                      not ``frozen_values``) when the counter advanced within
                                      ± 20 % (+ one ``counter_resolution_kwh``) of what the
                                      value implies
resolve_after               30 min    hysteresis: an alert of :data:`HYSTERESIS_RULES` closes
                                      only once its condition has been clear this long (in
                                      the rule's own time); it then resolves at the moment
                                      it first cleared
comm_loss_intervals         3         silence counts as lost after max(``comm_loss_after``,
                                      3 × the inverter's reporting interval): a logger that
                                      reports every 15 min is lost after 45 min
stop_tare_fraction          0.002     a stop judged on the clear sky alone (a trip with no
                                      peer and no sensor, a plant outage without a sensor:
                                      :func:`stop_evidence`) must fall straight to the tare
                                      (≤ 0.2 % of rated; a running inverter under heavy
                                      cloud still gives 0.5–3 %) …
stop_from_fraction          0.08      … from a window that produced ≥ 8 % of rated (the sun
                                      was out: not a dark dawn, a dusk or a fading sky) …
stop_min_duration           30 min    … and last this long before it is an alert
==========================  ========  =====================================================

Stops and the weather: the clear-sky expectation cannot tell a stopped inverter from a
heavy overcast, snow, a horizon the model does not know (hills, buildings) or an inverter
still asleep at a dark dawn. So a trip needs evidence that the sun was out: producing
peers (their median PI), a measured irradiance, or, for a lone inverter or a whole plant
with neither, a *stop from production* (:func:`stop_evidence`); an inverter at zero
that never started or faded to zero is not alerted without peers or a sensor.

Rules needing production (trip, underperformance, frozen) judge the last window in which
they can be evaluated, so a verdict holds through the night: one incident is one alert,
not one per day. Clipping and communication rules use the latest data.

Communication loss vs outage: while an inverter is silent ≥ ``comm_loss_after`` and some
peer reported after that point, ``comm_loss`` is active (opened at last sample + 15 min).
If no inverter of the plant reports, it is the site's ``plant_offline`` (inverter ``"*"``).
When data resumes, the energy counter across the gap (first counter reading of the
resumed window − last reading before the gap) is compared with a *reference* energy: the
producing peers' actual specific power over the gap slots (× own rating), or, for slots
without peers, the mean expected power of the two bracketing windows. The state that
resolves the alert carries ``last_gap.classification`` (``data_gap``, ``partial_outage``,
``outage`` or ``unknown`` when the counter readings are missing or went backwards).

The rules live in submodules by concern: :mod:`.model` (names, thresholds, the window,
shared helpers), :mod:`.production`, :mod:`.communication`, :mod:`.evaluate` (every rule
of an inverter and a plant, suppressions) and :mod:`.lifecycle` (alerts, MTTR,
availability); every public name is importable from ``ysh.om.rules``.
"""

from __future__ import annotations

from .model import (  # noqa: F401
    Alert, AlertKey, DEFAULT_THRESHOLDS, GAP_DATA, GAP_OUTAGE, GAP_PARTIAL, GAP_UNKNOWN, HYSTERESIS_RULES,
    INVERTER_RULES, PLANT_RULES, PLANT_SCOPE, Peers, RULE_CLIPPING, RULE_COMM_LOSS, RULE_FROZEN,
    RULE_PLANT_OFFLINE, RULE_PLANT_OUTAGE, RULE_POWER_LIMITED, RULE_TRIP, RULE_UNDERPERFORMANCE, RuleState,
    SEVERITY, Thresholds, WindowStat, performance_index, reporting_interval, silence_limit, stop_evidence,
    window_from_samples,
)
from .production import (  # noqa: F401
    clipping_state, frozen_state, plant_outage_state, power_limited_state, trip_state, underperformance_state,
)
from .communication import (  # noqa: F401
    classify_gap, comm_loss_state, plant_offline_state,
)
from .evaluate import (  # noqa: F401
    evaluate_plant, evaluate_windows,
)
from .lifecycle import (  # noqa: F401
    advance, alert_key, availability, mttr,
)

__all__ = [
    "Alert",
    "AlertKey",
    "DEFAULT_THRESHOLDS",
    "GAP_DATA",
    "GAP_OUTAGE",
    "GAP_PARTIAL",
    "GAP_UNKNOWN",
    "HYSTERESIS_RULES",
    "INVERTER_RULES",
    "PLANT_RULES",
    "PLANT_SCOPE",
    "Peers",
    "RULE_CLIPPING",
    "RULE_COMM_LOSS",
    "RULE_FROZEN",
    "RULE_PLANT_OFFLINE",
    "RULE_PLANT_OUTAGE",
    "RULE_POWER_LIMITED",
    "RULE_TRIP",
    "RULE_UNDERPERFORMANCE",
    "RuleState",
    "SEVERITY",
    "Thresholds",
    "WindowStat",
    "advance",
    "alert_key",
    "availability",
    "classify_gap",
    "clipping_state",
    "comm_loss_state",
    "evaluate_plant",
    "evaluate_windows",
    "frozen_state",
    "mttr",
    "performance_index",
    "plant_offline_state",
    "plant_outage_state",
    "power_limited_state",
    "reporting_interval",
    "silence_limit",
    "stop_evidence",
    "trip_state",
    "underperformance_state",
    "window_from_samples",
]
