"""`ysh ui` stops cleanly on SIGTERM and SIGINT: it and its dagster processes
(webserver, daemon, code server) exit, nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ysh.services.postgres import free_port

pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_ui_and_its_dagster_processes_exit_on_sigterm(tmp_path, warehouse):
    sig = signal.SIGTERM
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "YSH_"))},
           "YSH_HOME": str(tmp_path / "home"), "YSH_POSTGRES_DSN": warehouse.dsn,
           "YSH_POSTGRES_SCHEMA": warehouse.schema}
    log_path = tmp_path / "ui.log"
    with log_path.open("w") as log:
        # as a shell's background job: SIGINT ignored when it starts
        ui = subprocess.Popen([sys.executable, "-m", "ysh.cli", "ui", "--port", str(port), "--dagster-storage",
                               "sqlite"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            deadline = time.monotonic() + 180
            while True:
                assert ui.poll() is None, log_path.read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
            spawned = descendants(ui.pid)
            assert len(spawned) >= 3  # dagster dev, its webserver and daemon (and code server)
            ui.send_signal(sig)
            assert ui.wait(60) == 0, log_path.read_text()[-3000:]
            deadline = time.monotonic() + 30
            while any(alive(p) for p in spawned) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not [p for p in spawned if alive(p)], log_path.read_text()[-3000:]
        finally:
            if ui.poll() is None:
                ui.kill()
            for pid in descendants(ui.pid) if ui.poll() is None else ():
                os.kill(pid, signal.SIGKILL)


LEAVES_A_CHILD = """
import subprocess, sys, time
subprocess.Popen(["sleep", "600"])  # a child that outlives its parent unless its group is ended
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_supervise_ends_the_whole_group_on_a_signal(tmp_path, sig):
    """What `ysh ui` runs dagster dev with, on a stand-in whose child would be left behind."""
    script = tmp_path / "child.py"
    script.write_text(LEAVES_A_CHILD)
    runner = tmp_path / "runner.py"
    runner.write_text(f"import os, sys\nfrom ysh.cli import supervise\n"
                      f"sys.exit(supervise([sys.executable, {str(script)!r}], dict(os.environ), grace_s=2))\n")
    proc = subprocess.Popen([sys.executable, str(runner)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        spawned = descendants(proc.pid)
        assert len(spawned) == 2
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        deadline = time.monotonic() + 10
        while any(alive(p) for p in spawned) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in spawned if alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
