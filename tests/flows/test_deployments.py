"""``ysh flows serve`` registers the scheduled flows with their crons against a real
Prefect API (the test harness's server), from a separate process."""

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from ysh.flows.deployments import SCHEDULES, TIMEZONE

from ..conftest import wait_for

pytestmark = pytest.mark.integration


def test_serve_registers_the_scheduled_deployments(tmp_path):
    from prefect.client.orchestration import get_client

    with prefect_test_harness(server_startup_timeout=180):
        api = PREFECT_API_URL.value()
        env = {**os.environ, "PREFECT_API_URL": api, "YSH_HOME": str(tmp_path / "home")}
        log = (tmp_path / "serve.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "flows", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            async def deployments():
                async with get_client() as client:
                    return {d.name: d for d in await client.read_deployments()}

            found = wait_for(lambda: (lambda d: d if {"ysh-backup", "ysh-alerts"} <= set(d) else None)(
                asyncio.run(deployments())), 90, "the served deployments")
            crons = {name: [s.schedule.cron for s in d.schedules] for name, d in found.items()}
            zones = {name: [s.schedule.timezone for s in d.schedules] for name, d in found.items()}
            assert crons["ysh-backup"] == [SCHEDULES["backup"].cron]
            assert crons["ysh-alerts"] == [SCHEDULES["alerts"].cron]
            assert zones["ysh-backup"] == [TIMEZONE]
            assert "ysh-migrate_legacy" not in found  # on demand only
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
