"""``/metrics`` on both sides: the real chain's figures, read back with Prometheus's own parser.

The pages are served in-process (Flask's test client, with the peer address set) over the
databases that the real daemon and ingest worker wrote.
"""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import Settings
from appliance.web import create_app as plant_app
from cloud.config import CloudSettings
from cloud.web import create_app as cloud_app
from opskit.metrics import Metric, exposition
from tests.harness.system import System
from tests.harness.wait import wait_until

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
REMOTE = {"REMOTE_ADDR": "192.168.10.50"}


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{family: {sorted labels: value}}, through the reference parser (it raises on a malformed line)."""
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return families


def value(families, name: str, **labels: str) -> float:
    family = families.get(name.removesuffix("_total"), families.get(name))
    return family[tuple(sorted(labels.items()))]


@pytest.fixture
def chain(tmp_path, broker, zk_terminal, terminal_state):
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    system.start_ingest()
    system.start_appliance()
    for minute in range(3):
        terminal_state.punch("1001", when=datetime(2026, 3, 2, 7, 50 + minute))
    wait_until(
        lambda: (
            system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 3
            and system.appliance_rows("SELECT acked_seq FROM sync_state")[0][0]
            == system.appliance_rows("SELECT max(seq) FROM log_record")[0][0]
        ),
        timeout=30,
        message="three punches acknowledged",
    )
    wait_until(lambda: system.cloud_rows("SELECT status FROM appliance") == [("online",)], timeout=10)
    yield system
    system.stop_all()


@pytest.mark.e2e
def test_both_sides_publish_their_figures(chain):
    plant = plant_app(Settings.load(chain.appliance_conf)).test_client()
    response = plant.get("/metrics", environ_base=LOCAL)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse(response.get_data(as_text=True))
    head = chain.appliance_rows("SELECT max(seq) FROM log_record")[0][0]
    assert value(families, "punchproof_punches_stored_total") == 3
    assert value(families, "punchproof_log_head_seq") >= head
    assert value(families, "punchproof_sync_acked_seq") == head
    assert value(families, "punchproof_sync_connected") == 1
    assert value(families, "punchproof_terminal_up", terminal="gate-1") == 1
    assert abs(value(families, "punchproof_terminal_clock_offset_seconds", terminal="gate-1")) < 5
    assert value(families, "punchproof_sync_backlog_records") == value(families, "punchproof_log_head_seq") - head

    cloud = cloud_app(CloudSettings.load(chain.cloud_conf)).test_client()
    families = parse(cloud.get("/metrics", environ_base=LOCAL).get_data(as_text=True))
    labels = {"plant": "e2e-plant", "appliance": "pi-01"}
    assert value(families, "punchproof_cloud_punches_total") == 3
    assert value(families, "punchproof_cloud_records_ingested_total") == head + 1
    assert value(families, "punchproof_cloud_log_head_seq", **labels) == head
    assert value(families, "punchproof_cloud_appliances_online") == 1
    assert value(families, "punchproof_cloud_appliance_up", **labels) == 1
    assert 0 <= value(families, "punchproof_cloud_last_batch_age_seconds", **labels) < 60
    assert value(families, "punchproof_cloud_quarantined_total") == 0


@pytest.mark.e2e
def test_a_backlog_shows_its_size_and_age(tmp_path, broker, zk_terminal, terminal_state):
    system = System(tmp_path, broker.port, zk_terminal.address).configure()
    system.start_appliance()  # no ingest worker: nothing is acknowledged
    try:
        terminal_state.punch("1002", when=datetime(2026, 3, 2, 7, 55))
        wait_until(lambda: system.appliance_rows("SELECT count(*) FROM punch")[0][0] == 1, timeout=20)
    finally:
        system.stop_all()
    plant = plant_app(Settings.load(system.appliance_conf)).test_client()
    families = parse(plant.get("/metrics", environ_base=LOCAL).get_data(as_text=True))
    head = system.appliance_rows("SELECT max(seq) FROM log_record")[0][0]
    assert value(families, "punchproof_sync_acked_seq") == -1
    assert value(families, "punchproof_sync_backlog_records") == head + 1
    assert value(families, "punchproof_sync_oldest_unacked_age_seconds") > 0


def configured(tmp_path):
    from punchproof.broker import free_port

    return System(tmp_path, free_port(), ("127.0.0.1", free_port())).configure(register=False)


def test_only_this_machine_reads_metrics_without_a_token(tmp_path):
    system = configured(tmp_path)
    for app in (plant_app(Settings.load(system.appliance_conf)), cloud_app(CloudSettings.load(system.cloud_conf))):
        client = app.test_client()
        assert client.get("/metrics", environ_base=LOCAL).status_code == 200
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
        assert client.get("/metrics", environ_base=REMOTE).status_code == 403


@pytest.mark.parametrize(
    "proxy",
    [
        {"X-Forwarded-For": "203.0.113.9"},  # what nginx's proxy_add_x_forwarded_for sends
        {"X-Forwarded-For": "127.0.0.1"},  # a client may say anything: the header's presence is what counts
        {"Forwarded": "for=203.0.113.9;proto=https"},
        {"X-Real-IP": "203.0.113.9"},
    ],
)
def test_a_request_through_the_reverse_proxy_is_not_this_machine(tmp_path, proxy):
    """Behind the proxy every visitor's socket is 127.0.0.1: without a token file, a forwarded request is
    refused; with one, it needs the token like any remote client (issue #24.8)."""
    from tests.test_web_security import make_cloud, make_plant

    for side, make in (("appliance", make_plant), ("cloud", make_cloud)):
        state_dir = tmp_path / side
        state_dir.mkdir()
        client = make(state_dir).test_client()
        assert client.get("/metrics", environ_base=LOCAL).status_code == 200, side
        assert client.get("/metrics", environ_base=LOCAL, headers=proxy).status_code == 403, side
        (state_dir / "metrics.token").write_text("tok\n")
        bearer = {"Authorization": "Bearer tok"}
        assert client.get("/metrics", environ_base=LOCAL, headers=proxy).status_code == 403, side
        assert client.get("/metrics", environ_base=LOCAL, headers=proxy | bearer).status_code == 200, side


def test_with_a_token_file_only_the_bearer_reads_metrics_even_locally(tmp_path):
    system = configured(tmp_path)
    (tmp_path / "appliance" / "metrics.token").write_text("s3cret-token\n")
    (tmp_path / "cloud" / "metrics.token").write_text("other-token\n")
    pairs = (
        (plant_app(Settings.load(system.appliance_conf)), "s3cret-token"),
        (cloud_app(CloudSettings.load(system.cloud_conf)), "other-token"),
    )
    for app, token in pairs:
        client = app.test_client()
        assert client.get("/metrics", environ_base=LOCAL).status_code == 403, "a proxy on this host looks local"
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/metrics", environ_base=REMOTE, headers=bearer).status_code == 200
        wrong = {"Authorization": "Bearer guess"}
        assert client.get("/metrics", environ_base=REMOTE, headers=wrong).status_code == 403


def test_label_values_and_special_numbers_are_escaped_as_the_format_says():
    text = exposition(
        [
            Metric("pp_test", "gauge", "help with \\ and\nnewline").add(math.inf, name='gate "east"\\1\n2'),
            Metric("pp_nan", "gauge", "x").add(math.nan),
        ]
    )
    families = parse(text)
    assert families["pp_test"] == {(("name", 'gate "east"\\1\n2'),): math.inf}
    assert math.isnan(families["pp_nan"][()])
