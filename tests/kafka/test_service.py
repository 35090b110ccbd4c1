"""switchguard run against a real Kafka-protocol broker (tansu), driven by kafka-python."""
import json
import random
import threading
import time
import warnings

from conftest import ROOT, PrivateBroker, Service, consume, produce, replay, simulate
from switch_feed import lock_records, produce_timeline, switch_and_analyst, timeline


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


def by_id(records, field):
    """Records by id; a repeated id must carry a byte-identical record."""
    out = {}
    for raw in records:
        rid = json.loads(raw)[field]
        assert out.setdefault(rid, raw) == raw, f"repeated {rid} differs between emissions"
    return out


def test_kill9_under_a_switch_like_feed_loses_skips_and_adds_nothing(tmp):
    """kill -9 at random moments while the service works through what a switch-like producer
    fed it (20 ms linger, many records per batch, four partitions), with the switch's
    acknowledgements (some rejections, some never sent) and an analyst's releases, manual
    locks and extensions on the control topic; then every output and every lock record against
    a replay of the same files. Restarts resume from checkpoints whose offsets fall inside
    record batches; tansu answers such a fetch with the next batch, so without the position
    checks the rest of the batch was skipped (alerts replay does not give, pre-auths never
    seen)."""
    events, path = simulate(tmp, cards=6500, days=20, terminals=500, seed=5)
    assert len(events) >= 200_000, len(events)
    _, plain_cmds = replay(tmp, path)
    controls = switch_and_analyst(plain_cmds, events)
    control_file = tmp / "control.jsonl"
    control_file.write_text("".join(json.dumps(c) + "\n" for c in controls))
    want_dir = tmp / "want"
    want_alerts, want_cmds = replay(tmp, path, control=control_file, out=want_dir)
    assert want_cmds, "the stream must produce lockouts"
    actions = {json.loads(c)["action"] for c in want_cmds}
    assert {"lock_card", "unlock_card", "lock_terminal", "unlock_terminal", "extend"} <= actions, actions
    rules = {json.loads(a)["rule"] for a in want_alerts}
    assert {"command_unacknowledged", "command_rejected"} <= rules, "overdue and rejected commands"
    feed = timeline(events, controls)
    # Under load: the switch goes on producing while switchguard is down, so every life starts
    # behind. Fetches of up to 1 MB a partition, answered after 500 ms (tansu waits the full
    # fetch.wait.max.ms), keep each life busy for a second or so, and each fetch takes more
    # than one loop pass: a checkpoint taken while behind falls inside a record batch.
    svc = Service(tmp, extra='allowed_lateness = "100ms"\nidle_timeout = "5s"\n[kafka]\n'
                             '"fetch.wait.max.ms" = "500"\n"max.partition.fetch.bytes" = "1048576"\n'
                             '"fetch.max.bytes" = "4194304"\n',
                  # Frequent checkpoints: more of them fall inside a record batch being worked on
                  # (at 60 ms, once the service ran on mimalloc, two runs in three saw no such restart).
                  checkpoint_interval="20ms")
    svc.start().stop()  # creates the topics
    try:
        kills, reseeks = lives_killed_at_random(svc, feed, lives=15)
        wait_for(lambda: drained(svc), timeout=600, what="the service to process every event")
        time.sleep(2)
        # Every input record processed exactly once into the state (the engine's counters travel
        # in the checkpoints): a skipped offset would leave this short.
        seen = svc.metric("switchguard_events_total") + svc.metric("switchguard_duplicates_total")
        assert seen == len(events), f"{seen} events counted, {len(events)} produced"
        assert svc.metric("switchguard_input_offsets_skipped_total") == 0, "offsets skipped on a log without gaps"
        reseeks += svc.metric("switchguard_input_reseeks_total")
        late = svc.metric("switchguard_late_events_total")  # restored with the state
        live_locks = lock_records(svc.get("/locks")[1])
        svc.stop()
        # tansu answers a fetch inside a batch with the next batch: restarts behind the feed
        # usually have to seek back (with Apache Kafka this count stays 0). Whether a checkpoint
        # falls inside a batch is timing: the seek itself is proven deterministically by the
        # unit tests of service::positions, so a run without one is reported, not failed.
        if reseeks == 0:
            warnings.warn(f"{kills} kills and no restart resumed inside a record batch this run")
        print(f"{kills} kills, {reseeks:.0f} seeks back to a batch start, {late:.0f} late inputs")
    finally:
        if svc.proc.poll() is None:
            svc.kill9()  # a failure above left it running
    for topic, want, field in (("alerts", want_alerts, "alert_id"), ("commands", want_cmds, "command_id")):
        got = by_id(consume(svc.topics[topic]), field)
        want_by_id = by_id(want, field)
        missing = set(want_by_id) - set(got)
        extra = set(got) - set(want_by_id)
        assert not missing and not extra, (
            f"{topic}: {len(missing)} missing, {len(extra)} extra ({late:.0f} late inputs); "
            f"extra: {[json.loads(got[i]).get('rule') for i in sorted(extra)[:5]]}")
        for rid, raw in got.items():
            assert raw == want_by_id[rid], f"{topic} {rid} differs from the uninterrupted run"
    # No lock record, release or acknowledgement lost or changed.
    assert live_locks == lock_records((want_dir / "locks.json").read_text())


def lives_killed_at_random(svc, feed, lives):
    """Feed `feed` in `lives` chunks, two thirds of each while the service is down and the rest
    while it runs; kill -9 each life once it has processed events, eight times at least and on
    (up to lives - 1) until a restart resumed inside a record batch. Returns the kills and the
    seeks back of the killed lives."""
    rng = random.Random(1)
    kills, reseeks, running = 0, 0.0, False
    for i in range(lives):
        chunk = feed[i * len(feed) // lives:(i + 1) * len(feed) // lives]
        cut = len(chunk) * 2 // 3
        produce_timeline(svc.topics, chunk[:cut])  # while switchguard is down
        if not running:
            svc.start()
            running = True
        started_at = svc.metric("switchguard_events_total")  # restored with the state
        feeder = threading.Thread(target=produce_timeline, args=(svc.topics, chunk[cut:]))
        feeder.start()  # and while it runs
        if i < lives - 1 and (kills < 8 or reseeks == 0):
            # Killed while working behind the feed: once this life has processed events
            # (start-up, assignment and the first fetch take a variable time), then after a
            # random moment.
            wait_for(lambda: svc.metric("switchguard_events_total") > started_at, timeout=60,
                     what="this life to process events")
            time.sleep(rng.uniform(0.05, 0.5))
            if svc.proc.poll() is not None:
                raise AssertionError(svc.log.read_text())
            reseeks += svc.metric("switchguard_input_reseeks_total")
            svc.kill9()
            kills, running = kills + 1, False
        feeder.join()
    return kills, reseeks


def drained(svc):
    text = svc.get("/metrics")[1]
    return ("switchguard_consumer_lag{" in text and svc.metric("switchguard_consumer_lag") == 0
            and svc.metric("switchguard_buffered_events") == 0 and svc.metric("switchguard_events_total") > 0)


def test_a_checkpoint_that_cannot_be_written_is_loud(tmp):
    """The broker freezes: checkpoints stop completing. Each checkpoint_timeout is a log line
    with the reason and a count; after max_checkpoint_failures readiness goes, and comes back
    with the next checkpoint written."""
    b = PrivateBroker(tmp)
    svc = Service(tmp, brokers=b.address,
                  extra='checkpoint_timeout = "1s"\nmax_checkpoint_failures = 2')
    try:
        svc.start()
        produce(svc.topics["input"], [pin_fail(i, "CARD-F", "T1", f"2026-10-01T10:0{i}:00+08:00") for i in range(3)],
                brokers=b.address)
        wait_for(lambda: svc.metric("switchguard_checkpoints_total") >= 2, what="checkpoints")
        assert svc.metric("switchguard_checkpoint_failures_total") == 0
        assert svc.metric("switchguard_checkpoint_age_seconds") < 5
        b.freeze()
        wait_for(lambda: svc.get("/readyz")[0] == 503, timeout=30, what="readiness withdrawn")
        body = svc.get("/readyz")[1]
        assert "checkpoints failed in a row" in body, body
        assert svc.metric("switchguard_checkpoint_failures_total", reason="timeout") >= 2
        assert svc.metric("switchguard_checkpoint_age_seconds") >= 2
        log = svc.log.read_text()
        assert "checkpoint failed (timeout): incomplete" in log, log
        assert svc.get("/healthz")[0] == 200, "the process itself is fine"
        b.thaw()
        wait_for(lambda: svc.get("/readyz")[0] == 200, timeout=60, what="readiness back")
        assert "checkpoint written again" in svc.log.read_text()
        written = svc.metric("switchguard_checkpoints_total")
        wait_for(lambda: svc.metric("switchguard_checkpoints_total") > written, what="further checkpoints")
        assert svc.metric("switchguard_checkpoint_age_seconds") < 5
    finally:
        b.thaw()
        svc.stop()
        b.stop()


def test_checkpoints_keep_up_when_each_output_is_its_own_batch(tmp):
    """With -X batch.num.messages=1 (one output per produced batch) and a backlog, checkpoints
    stayed at 0 for as long as the delivery reports of the backlog's outputs took to be served
    one a loop pass (minutes), silently; a restart then went back to offset 0."""
    events, _ = simulate(tmp, cards=3000, days=10, terminals=300, seed=3, attack_rate=10)
    svc = Service(tmp, extra='[kafka]\n"batch.num.messages" = "1"\n')
    svc.start().stop()  # creates the topics
    produce(svc.topics["input"], events)
    svc.start()
    try:
        wait_for(lambda: svc.metric("switchguard_events_total") + svc.metric("switchguard_duplicates_total")
                 >= len(events), timeout=120, what="the backlog to be processed")
        assert svc.metric("switchguard_alerts_total") > 500, "many outputs, each its own batch"
        wait_for(lambda: svc.metric("switchguard_checkpoints_total") >= 1, timeout=10,
                 what="a checkpoint once the backlog is processed")
        assert svc.metric("switchguard_checkpoint_failures_total") == 0
    finally:
        svc.stop()


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
