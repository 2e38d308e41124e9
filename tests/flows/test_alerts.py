"""The alerts flow against a real Dagster instance, PostgreSQL and a local HTTP receiver
standing in for Slack's webhook; and the backup-failed-twice hook."""

import dagster as dg
import pytest
from prefect.testing.utilities import prefect_test_harness

from ysh.notify import NotifyError, SlackNotifier
from ysh.settings import get_settings

from ..conftest import Receiver, query

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect():
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture()
def slack():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture()
def ops_env(warehouse_env, slack, tmp_path, monkeypatch):
    monkeypatch.setenv("YSH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YSH_SLACK_WEBHOOK_URL", slack.url)
    (tmp_path / "home" / "dagster").mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    get_settings.cache_clear()
    yield warehouse_env
    get_settings.cache_clear()


@dg.asset
def broken_asset():
    raise RuntimeError("source unreachable")


@dg.asset
def checked_asset():
    return 1


@dg.asset_check(asset=checked_asset)
def checked_asset_positive():
    return dg.AssetCheckResult(passed=False, metadata={"why": "planted failure"})


def test_notifier_retries_a_transient_error_and_refuses_a_bad_request(slack):
    notifier = SlackNotifier(slack.url, backoff_s=0.01, min_interval_s=0)
    slack.answers.extend([503])
    assert notifier.send("hello") is True and slack.messages == ["hello"]
    slack.answers.extend([400])
    with pytest.raises(NotifyError, match="HTTP 400"):
        notifier.send("bad")
    assert SlackNotifier(None).send("nowhere") is False


def test_dagster_failures_are_sent_once(prefect, ops_env, slack):
    from ysh.flows.alerts import alerts

    instance = dg.DagsterInstance.get()
    assert not dg.materialize([broken_asset], instance=instance, raise_on_error=False).success
    assert dg.materialize([checked_asset, checked_asset_positive], instance=instance).success
    slack.answers.extend([503])  # one transient error on the way: retried
    report = alerts()
    assert (len(report.sent), report.already_sent) == (2, 0)
    assert any("Dagster run failed" in m and "source unreachable" in m for m in slack.messages)
    assert any("checked_asset_positive" in m for m in slack.messages)
    again = alerts()
    assert (again.sent, again.already_sent) == ([], 2)
    assert len(slack.messages) == 2
    assert query(ops_env, "SELECT count(*) FROM ops_alerts_sent WHERE status = 'sent'") == [(2,)]


def test_an_alert_slack_refuses_stays_pending_and_goes_out_with_the_next_run(prefect, ops_env, slack):
    from ysh.flows.alerts import alerts

    instance = dg.DagsterInstance.get()
    assert not dg.materialize([broken_asset], instance=instance, raise_on_error=False).success
    slack.answers.extend([400])  # Slack refuses (e.g. a revoked webhook): not retried within the run
    with pytest.raises(Exception, match="kept pending"):
        alerts()
    assert query(ops_env, "SELECT status, attempts FROM ops_alerts_sent") == [("pending", 1)]
    report = alerts(lookback_minutes=0)  # the event is outside the lookback now: still delivered
    assert len(report.sent) == 1 and len(slack.messages) == 1
    assert query(ops_env, "SELECT status, attempts FROM ops_alerts_sent") == [("sent", 2)]


def test_a_backup_failing_twice_in_a_row_alerts_once(prefect, ops_env, slack, monkeypatch):
    from ysh.flows.deployments import flows

    monkeypatch.delenv("YSH_BACKUP_BUCKET", raising=False)  # a backup without a bucket fails
    get_settings.cache_clear()
    backup = flows()["backup"]
    for _ in range(2):
        with pytest.raises(Exception):
            backup()
    failed_twice = [m for m in slack.messages if "failed twice" in m]
    assert len(failed_twice) == 1


def test_om_alerts_become_one_digest(prefect, ops_env, slack):
    """The O&M job's ``om_alerts``: the new ones as one digest per run."""
    from ysh import db
    from ysh.flows.alerts import alerts

    with db.connect(ops_env.dsn, ops_env.schema) as conn:
        conn.execute("INSERT INTO om_alerts (alert_key, plant_id, inverter_id, rule, opened_at, resolved_at, details) "
                     "VALUES ('a1', 'p1', 'i1', 'inverter_trip', now() - interval '10 min', NULL, '{}'),"
                     " ('a2', 'p1', 'i2', 'inverter_trip', now() - interval '5 min', NULL, '{}'),"
                     " ('a3', 'p2', 'i1', 'comm_loss', now() - interval '3 min', now(), '{}'),"
                     " ('a4', 'p2', 'i2', 'comm_loss', now() - interval '3 days', NULL, '{}')")
        conn.commit()
    report = alerts(lookback_minutes=60)
    digest = [m for m in slack.messages if "O&M alerts" in m]
    assert len(digest) == 1 and "inverter_trip: 2" in digest[0] and "comm_loss: 1" in digest[0]
    assert len(report.sent) == 1
    alerts(lookback_minutes=60)  # nothing new: no second digest of the same alerts
    with db.connect(ops_env.dsn, ops_env.schema) as conn:
        conn.execute("INSERT INTO om_alerts (alert_key, plant_id, inverter_id, rule, opened_at, resolved_at, details) "
                     "VALUES ('a5', 'p3', 'i1', 'frozen_values', now(), NULL, '{}')")
        conn.commit()
    alerts(lookback_minutes=60)
    digests = [m for m in slack.messages if "O&M alerts" in m]
    assert len(digests) == 2 and "1 new O&M alerts — frozen_values: 1" in digests[1]


def test_two_senders_on_the_outbox_send_each_notice_once(warehouse, slack):
    """The O&M service's notifier and the alerts flow drain the same outbox at the same
    time: every notice reaches Slack once (rows are claimed while being sent)."""
    import threading

    from ysh import db
    from ysh.notify import Notice, enqueue_notices, send_pending

    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        enqueue_notices(conn, [Notice(f"om:k{i}", "om_opened", f"alerta {i}") for i in range(8)]
                        + [Notice("dagster-run:r1", "dagster_run_failure", "run r1 falhou")])

    def sender(kinds):
        with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn, \
                SlackNotifier(slack.url, min_interval_s=0.05) as notifier:
            send_pending(conn, notifier, kinds=kinds)

    from ysh.flows.alerts import ALERT_KINDS
    from ysh.om.sinks import OM_NOTICE_KINDS

    everything = ALERT_KINDS + OM_NOTICE_KINDS
    threads = [threading.Thread(target=sender, args=(k,)) for k in (everything, OM_NOTICE_KINDS, everything)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(slack.messages) == sorted([f"alerta {i}" for i in range(8)] + ["run r1 falhou"])
    assert query(warehouse, "SELECT count(*) FROM ops_alerts_sent WHERE status = 'sent'") == [(9,)]


def test_without_a_webhook_notices_wait_in_the_outbox_for_a_sender_that_has_one(warehouse, slack, caplog):
    """A worker without the webhook must not swallow the notices: they stay pending (with a
    warning) and the first sender with a webhook delivers them."""
    from ysh import db
    from ysh.notify import DeliveryReport, Notice, enqueue_notices, send_pending

    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        enqueue_notices(conn, [Notice("om:w1", "om_opened", "inversor parado"),
                               Notice("dagster-run:w2", "dagster_run_failure", "run w2 falhou")])
        report = DeliveryReport()
        with SlackNotifier(None) as nowhere:
            assert send_pending(conn, nowhere, report, kinds=("om_opened", "om_resolved")) == []
        assert report.waiting == 1 and report.sent == []
        assert "no Slack webhook configured" in caplog.text
        assert sorted(conn.execute("SELECT alert_key, status FROM ops_alerts_sent").fetchall()) == [
            ("dagster-run:w2", "pending"), ("om:w1", "pending")]
        with SlackNotifier(slack.url, min_interval_s=0) as notifier:
            send_pending(conn, notifier, kinds=("om_opened", "om_resolved"))
        assert slack.messages == ["inversor parado"]  # only its own kind: the run failure is the flow's
        assert sorted(conn.execute("SELECT alert_key, status FROM ops_alerts_sent").fetchall()) == [
            ("dagster-run:w2", "pending"), ("om:w1", "sent")]


def test_the_alerts_flow_leaves_the_om_services_notices_alone(prefect, ops_env, slack):
    from ysh import db
    from ysh.flows.alerts import alerts
    from ysh.notify import Notice, enqueue_notices

    with db.connect(ops_env.dsn, ops_env.schema, autocommit=True) as conn:
        enqueue_notices(conn, [Notice("om:x1:opened", "om_opened", "alerta aberto")])
    report = alerts(lookback_minutes=0)
    assert report.sent == [] and slack.messages == []
    assert query(ops_env, "SELECT status FROM ops_alerts_sent WHERE alert_key = 'om:x1:opened'") == [("pending",)]


def test_a_notice_slack_refuses_for_good_stops_after_its_attempts_with_the_reason(warehouse, slack):
    from ysh import db
    from ysh.notify import DeliveryReport, Notice, enqueue_notices, send_pending

    kinds = ("dagster_run_failure",)
    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn, \
            SlackNotifier(slack.url, min_interval_s=0) as notifier:
        enqueue_notices(conn, [Notice("dagster-run:r404", "dagster_run_failure", "run falhou")])
        for attempt in range(1, 4):
            slack.answers.extend([404])  # a revoked webhook: Slack answers 404 no_service
            report = DeliveryReport()
            failures = send_pending(conn, notifier, report, kinds=kinds, max_attempts=3)
            assert len(failures) == 1 and "HTTP 404" in failures[0]
            status = "failed" if attempt == 3 else "pending"
            assert conn.execute("SELECT status, attempts FROM ops_alerts_sent").fetchall() == [(status, attempt)]
        assert report.failed == ["dagster-run:r404"]
        assert "HTTP 404" in conn.execute("SELECT last_error FROM ops_alerts_sent").fetchone()[0]
        assert send_pending(conn, notifier, kinds=kinds, max_attempts=3) == []  # not tried again
        slack.answers.extend([503, 503, 503, 503])  # transient errors never make a notice failed
        enqueue_notices(conn, [Notice("dagster-run:r503", "dagster_run_failure", "outra")])
        flaky = SlackNotifier(slack.url, min_interval_s=0, retries=0)
        for _ in range(4):
            send_pending(conn, flaky, kinds=kinds, max_attempts=3)
        assert conn.execute("SELECT status, attempts FROM ops_alerts_sent WHERE alert_key = 'dagster-run:r503'"
                            ).fetchall() == [("pending", 4)]
        flaky.close()
