"""The policy form's missed check-in alert settings (#20.1): HR ticks the channels, types the quiet hours and the
board's address; the body the form builds carries them and ``policy.parse`` reads them; a version without them
reads back unchanged; a bad time is said beside its field."""

from __future__ import annotations

from datetime import time

from cloud.escalation.policy import parse
from cloud.web import policy_form
from tests.cloud.web.test_policy_form import policy_form_body


def test_the_alert_settings_typed_in_the_form_reach_the_policy():
    values = policy_form.values_of(policy_form_body())
    assert values["alert_channels"] == ["wecom", "dingtalk", "sms"], "every channel, in this order, by default"
    values |= {"alert_channels": ["sms", "wecom"], "alert_quiet_start": "22:00", "alert_quiet_end": "06:30"}
    values["alert_board_url"] = "http://192.168.1.20:8080"
    checked = policy_form.check(values)
    assert checked.errors == {}
    assert checked.body["alerts"] == {
        "channels": ["wecom", "sms"],  # in the order of preference (the JSON may give another)
        "quiet_hours": {"start": "22:00", "end": "06:30"},
        "board_url": "http://192.168.1.20:8080",
    }
    policy = parse(checked.body)
    assert policy.alert_channels == ("wecom", "sms")
    assert (policy.alert_quiet_start, policy.alert_quiet_end) == (time(22, 0), time(6, 30))
    again = policy_form.check(policy_form.values_of(checked.body))
    assert again.errors == {} and again.body == checked.body, "read back as it was published"


def test_a_version_without_alert_settings_reads_back_unchanged_and_a_bad_time_is_said_beside_it():
    body = policy_form_body()
    assert "alerts" not in policy_form.check(policy_form.values_of(body)).body
    values = policy_form.values_of(body) | {"alert_quiet_start": "25点", "alert_channels": []}
    checked = policy_form.check(values)
    assert checked.errors["alert_quiet_start"] == ["请按 时:分 填写，如 08:00"]
    assert checked.errors["alert_channels"] == ["请至少勾选一项"]
    assert "alerts" in policy_form.TEXT and policy_form.word("alert_channels", "zh") == "预警发送通道"
