"""Sample data generators and simulators: not part of the runtime.

What is here writes or produces the platform's sample inputs, deterministically (a pure
function of a seed, or fixed data):

* :mod:`.catalog` - distributor feeds (``data/sample/catalog``) and the catalog benchmark feed;
* :mod:`.tariffs` - ANEEL tariff extracts (``data/sample/tariffs``) and the tariffs benchmark file;
* :mod:`.om_telemetry` - simulated inverter telemetry of a PV fleet, with labelled faults;
* :mod:`.medusa` - the Medusa-like quotes, companies and orders of the proposals job;
* :mod:`.proposals` - random proposal inputs (benchmark, billing equality tests);
* :mod:`.legacy` - the legacy ERP export (``data/sample/legacy``) of ``migrate_legacy``.

The runtime (pipelines, assets, flows, services) never imports this package; only the
demo and sample commands do (``ysh demo``, ``ysh om simulate``, ``ysh proposals seed``),
besides ``scripts/``, ``benchmarks/`` and the tests. Physics that the simulator shares
with the runtime's models lives in the runtime (:mod:`ysh.om.physics`), not here.
"""
