"""switchguard run against a real Kafka-protocol broker (tansu), driven by kafka-python."""
import json
import random
import time

from conftest import ROOT, Service, consume, produce, replay, simulate


def pin_fail(i, card, terminal, ts):
    return {"id": f"x{i}", "ts": ts, "type": "auth", "card": card, "terminal": terminal, "merchant": "M1",
            "entry_mode": "chip", "pin": "entered", "response_code": "55", "amount": 1000, "currency": "CNY"}


def wait_for(pred, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_bad_input_lands_in_the_dlq_and_good_events_around_it_are_processed(tmp):
    svc = Service(tmp).start()
    try:
        good = [pin_fail(i, "CARD-A", f"T{i}", f"2026-10-01T10:0{i}:00+08:00") for i in range(3)]
        bad = [
            b"garbage \x00\x01",
            b'{"id":"t1","ts":"2026-10-01T10:00:00+08:00","type":"auth"',
            b'{"id":"t2","ts":"2026-10-01T10:00:00+08:00","type":"auth","terminal":"T","merchant":"M","amount":"12"}',
            b'{"id":"t3","ts":1,"type":"auth","terminal":"T","merchant":"M","amount":1e400}',
            b'{"id":"t3b","ts":1,"type":"auth","terminal":"T","merchant":"M","amount":99999999999999999999}',
            b'{"id":"t4","ts":"2026-10-01T10:00:00+08:00","type":"auth","terminal":"T","merchant":"M","pan":"6225881234567890","x":"' + b"y" * 70000 + b'"}',
            b'{"id":"t5\xff\xfe","ts":1,"type":"auth","terminal":"T","merchant":"M"}',
            b"[1,2,3]",
        ]
        records = [good[0], bad[0], bad[1], good[1], *bad[2:], good[2]]
        produce(svc.topics["input"], records, key_field="card")
        wait_for(lambda: svc.metric("switchguard_rejects_total") >= len(bad), what="rejects")
        # A final event far later pushes the watermark past the good events.
        produce(svc.topics["input"], [dict(good[0], id="late-marker", ts="2026-10-02T10:00:00+08:00", response_code="00")], key_field="card")
        dlq = consume(svc.topics["dlq"], headers=True)
        assert len(dlq) == len(bad)
        reasons = sorted(dict(h)["reason_code"].decode() for _, _, h in dlq)
        # 1e400 does not fit a 64-bit number: the JSON itself is refused (malformed_json).
        assert reasons == sorted(["malformed_json", "malformed_json", "malformed_json", "bad_value", "bad_value",
                                  "too_large", "invalid_utf8", "not_an_object"]), reasons
        for _, value, h in dlq:
            assert b"6225881234567890" not in value, "a clear PAN must not be re-emitted"
            assert dict(h)["reason"] and dict(h)["source"].startswith(svc.topics["input"].encode())
        wait_for(lambda: consume(svc.topics["commands"], settle=1), what="the lockout command")
        cmds = [json.loads(v) for v in consume(svc.topics["commands"])]
        assert [c["rule"] for c in cmds] == ["pin_consecutive_wrong"]
        assert cmds[0]["event_ids"] == ["x0", "x1", "x2"]
        assert svc.get("/healthz")[0] == 200
    finally:
        svc.stop()


def test_kill9_at_random_points_loses_and_adds_nothing(tmp):
    events, path = simulate(tmp, cards=6500, days=20, terminals=500, seed=5)
    assert len(events) >= 200_000, len(events)
    want_alerts, want_cmds = replay(tmp, path)
    assert want_cmds, "the stream must produce lockouts"
    svc = Service(tmp, extra='allowed_lateness = "100ms"\nidle_timeout = "2s"')
    svc.start().stop()  # creates the topics (the broker does not auto-create)
    produce(svc.topics["input"], events, one_per_batch=True)
    rng = random.Random(1)
    kills = 0
    svc.start()
    while kills < 10:
        time.sleep(rng.uniform(0.3, 2.5))
        if svc.proc.poll() is not None:
            raise AssertionError(svc.log.read_text())
        svc.kill9()
        kills += 1
        svc.start()
    total = len(events)
    def drained():
        text = svc.get("/metrics")[1]
        return ("switchguard_consumer_lag{" in text and svc.metric("switchguard_consumer_lag") == 0
                and svc.metric("switchguard_buffered_events") == 0 and svc.metric("switchguard_events_total") > 0)
    wait_for(drained, timeout=600, what="the service to process every event")
    late = svc.metric("switchguard_late_events_total")
    time.sleep(2)
    svc.stop()
    for topic, want in (("alerts", want_alerts), ("commands", want_cmds)):
        got = consume(svc.topics[topic])
        by_id = {}
        for raw in got:
            rid = json.loads(raw)["alert_id" if topic == "alerts" else "command_id"]
            assert by_id.setdefault(rid, raw) == raw, f"repeated {rid} differs between emissions"
        want_by_id = {json.loads(r)["alert_id" if topic == "alerts" else "command_id"]: r for r in want}
        missing = set(want_by_id) - set(by_id)
        extra = set(by_id) - set(want_by_id)
        assert not missing and not extra, f"{topic}: {len(missing)} missing, {len(extra)} extra ({late} late events)"
        for rid, raw in by_id.items():
            assert raw == want_by_id[rid], f"{topic} {rid} differs from the uninterrupted run"
    assert total > 0


def test_rules_reload_validates_first_and_keeps_old_rules_on_error(tmp, rules_copy):
    svc = Service(tmp, rules=rules_copy).start()
    try:
        (rules_copy / "zz_broken.toml").write_text("[[rule]]\nid = \"broken\"\nseverity = \"nope\"\n")
        wait_for(lambda: svc.metric("switchguard_rule_reloads_total", outcome="rejected") >= 1, what="rejected reload")
        assert svc.proc.poll() is None
        (rules_copy / "zz_broken.toml").unlink()
        text = (rules_copy / "pin.toml").read_text()
        (rules_copy / "pin.toml").write_text(text.replace('threshold = 3', 'threshold = 2', 1))
        wait_for(lambda: svc.metric("switchguard_rule_reloads_total", outcome="ok") >= 1, what="reload")
        produce(svc.topics["input"], [pin_fail(i, "CARD-R", "T1", f"2026-10-01T10:0{i}:00+08:00") for i in range(2)]
                + [dict(pin_fail(9, "CARD-Z", "T1", "2026-10-02T10:00:00+08:00"), response_code="00")], key_field="terminal")
        wait_for(lambda: consume(svc.topics["commands"], settle=1), what="command under the reloaded rule")
        cmds = [json.loads(v) for v in consume(svc.topics["commands"])]
        assert cmds[0]["event_ids"] == ["x0", "x1"], "two wrong PINs lock under the reloaded threshold"
    finally:
        svc.stop()


def test_lockout_guard_holds_lockouts_past_the_rate(tmp):
    svc = Service(tmp, extra="max_lockouts_per_minute = 2").start()
    try:
        evs = []
        n = 0
        for c in range(5):
            for k in range(3):
                evs.append(pin_fail(n, f"CARD-{c}", "T1", f"2026-10-01T10:00:{c * 6 + k:02d}+08:00"))
                n += 1
        evs.append(dict(pin_fail(99, "CARD-Z", "T1", "2026-10-02T10:00:00+08:00"), response_code="00"))
        produce(svc.topics["input"], evs, key_field="terminal")
        wait_for(lambda: svc.metric("switchguard_lockouts_held_total") >= 3, what="held lockouts")
        alerts = [json.loads(v) for v in consume(svc.topics["alerts"])]
        cmds = consume(svc.topics["commands"])
        assert len(cmds) == 2
        guard = [a for a in alerts if a["rule"] == "lockout_guard"]
        assert len(guard) == 1 and guard[0]["severity"] == "critical"
        held = [a for a in alerts if a["features"].get("action_status") == "held_by_guard"]
        assert len(held) == 3
        assert svc.metric("switchguard_lockouts_held_total", rule="pin_consecutive_wrong") == 3
    finally:
        svc.stop()


def test_metrics_count_what_happened(tmp):
    events, _ = simulate(tmp, cards=300, days=2, terminals=60, seed=9)
    svc = Service(tmp).start()
    try:
        produce(svc.topics["input"], events + [b"not json"])
        wait_for(lambda: svc.metric("switchguard_events_total") + svc.metric("switchguard_duplicates_total") >= len(events) - 50,
                 timeout=120, what="events counted")
        time.sleep(3)
        text = svc.get("/metrics")[1]
        for name in ["switchguard_events_total", "switchguard_rejects_total", "switchguard_rule_hits_total",
                     "switchguard_alerts_total", "switchguard_decision_latency_seconds_bucket",
                     "switchguard_end_to_end_latency_seconds_bucket", "switchguard_consumer_lag",
                     "switchguard_state_entries", "switchguard_transactions_total", "switchguard_up"]:
            assert name in text, name
        assert svc.metric("switchguard_rejects_total", reason="malformed_json") == 1
        assert svc.metric("switchguard_events_total", type="sign_on") > 0
        assert svc.metric("switchguard_rule_hits_total") > 0
        assert svc.get("/readyz")[0] == 200 and svc.get("/nope")[0] == 404
        for line in text.splitlines():
            assert "tok_" not in line and "CARD" not in line, "keys never become labels"
    finally:
        svc.stop()
