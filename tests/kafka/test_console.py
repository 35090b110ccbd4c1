"""The risk console (`switchguard console`) against SQLite and a real PostgreSQL, a real broker
(tansu) and, for the end-to-end test, the real service and headless Chromium (Debian's
chromium driven by playwright-core). Every test runs once per database backend."""
import json
from datetime import datetime, timedelta, timezone
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Service, consume, produce
from console_support import BACKENDS, Client, Console, Database, add_user, alert, dumps, wait_for

PASSWORD = "analyst-Pa55word!"
VIEWER_PW = "viewer-Pa55word!"
XSS = "<script>window.__xss=1</script>"


def replay_dir(tmp: Path, alerts, evidence=(), commands=(), control=()):
    d = tmp / "replay-out"
    d.mkdir(exist_ok=True)
    for name, rows in [("alerts", alerts), ("evidence", evidence), ("commands", commands), ("control", control)]:
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def load(db, d):
    r = subprocess.run([os.environ["SWITCHGUARD_BIN"], "console", "load", str(d), "--database", db.url],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_security_refusals_throttling_hashing_and_escaping(tmp, backend):
    db = Database(backend, tmp)
    out = add_user(db, "alice", "analyst", PASSWORD) + add_user(db, "victor", "viewer", VIEWER_PW)
    xss_alert = alert(1, "tok_xss", merchant=XSS, terminal='<img src=x onerror="window.__xss=2">',
                      reason=f"reason {XSS}")
    ev = {"alert_id": xss_alert["alert_id"], "ts": xss_alert["ts"], "rule": xss_alert["rule"],
          "events": [{"id": "e1", "ts": xss_alert["ts"], "type": "auth", "card": "tok_xss", "terminal": XSS,
                      "merchant": XSS, "pan": "6225880000000018", "response_code": "55"}]}
    loaded = load(db, replay_dir(tmp, [xss_alert, alert(2, "tok_b"), {"broken": True}], [ev]))
    assert "2 new alerts" in loaded and "1 rejects" in loaded, loaded
    assert load(db, replay_dir(tmp, [xss_alert])).startswith(f"loaded"), "a second load is fine"
    assert db.scalar("SELECT COUNT(*) FROM alerts") == 2, "loading twice stores nothing twice"
    console = Console(tmp, db, kafka=False).start()
    try:
        anon = Client(console)
        for path in ["/inbox", "/cases/1", "/overview", "/precision", "/labels.jsonl", "/audit", "/"]:
            status, body, headers = anon.get(path)
            assert status in (303, 307) and headers.get("location", headers.get("Location")) in ("/login", "/inbox"), (path, status)
            assert "tok_" not in body
        assert anon.get("/live")[0] == 401
        for path in ["/cases/1/act", "/cases/1/lock", "/cases/bulk", "/logout"]:
            assert anon.post(path, {"op": "comment", "comment": "x"})[0] == 401, path
        assert anon.get("/login")[0] == 200

        viewer = Client(console)
        assert viewer.login("victor", VIEWER_PW)[0] == 303
        assert viewer.get("/inbox")[0] == 200 and viewer.get("/cases/1")[0] == 200
        for path, data in [("/cases/1/act", {"op": "comment", "comment": "hi"}),
                           ("/cases/1/act", {"op": "dispose", "disposition": "false_positive"}),
                           ("/cases/1/lock", {"op": "unlock", "reason": "r"}),
                           ("/cases/bulk", {"op": "close", "id": ["1"]})]:
            assert viewer.post(path, dict(data, csrf=viewer.csrf))[0] == 403, path
        assert viewer.get("/audit")[0] == 403

        alice = Client(console)
        assert alice.login("alice", PASSWORD)[0] == 303
        history = lambda: db.scalar("SELECT COUNT(*) FROM case_history")
        before = history()
        assert alice.post("/cases/1/act", {"op": "comment", "comment": "no token"})[0] == 403
        assert alice.post("/cases/1/act", {"op": "comment", "comment": "bad", "csrf": "x" * 43})[0] == 403
        forged = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
        assert alice.post("/cases/1/act", {"op": "comment", "comment": "forged", "csrf": alice.csrf}, forged)[0] == 403
        assert alice.post("/cases/1/act", {"op": "comment", "comment": "forged", "csrf": alice.csrf},
                          {"Origin": "http://127.0.0.1:1"})[0] == 403
        assert history() == before, "refused requests changed nothing"
        assert alice.post("/cases/1/act", {"op": "comment", "comment": "real", "csrf": alice.csrf})[0] == 303
        assert history() == before + 1
        assert alice.post("/cases/1/lock", {"op": "unlock", "reason": "r", "csrf": alice.csrf})[0] == 400, \
            "no Kafka: no lock action"

        # XSS payloads in the alert and its events are shown as text.
        status, page, headers = alice.get("/cases/1")
        assert status == 200 and "script-src 'self'" in headers.get("content-security-policy", "")
        assert XSS not in page and "<img src=x" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page or "&#60;script&#62;" in page, page[:2000]
        assert "6225880000000018" not in page and "622588******0018" in page

        # Login throttling: after 5 failures even the right password is refused for a while.
        mallory = Client(console)
        for _ in range(5):
            assert mallory.login("alice", "wrong-password")[0] == 401
        assert mallory.login("alice", PASSWORD)[0] == 429
        assert console.metric("switchguard_console_logins_total", outcome="throttled") >= 1
    finally:
        console.stop()
    # Passwords never stored or logged in clear (nor the session token).
    stored = db.raw_bytes()
    logged = console.log.read_bytes() + out.encode()
    for secret in [PASSWORD, VIEWER_PW]:
        assert secret.encode() not in stored and secret.encode() not in logged
    assert b"$argon2id$" in stored
    assert b"6225880000000018" not in stored
    actions = [r[0] for r in db.query("SELECT action FROM audit ORDER BY id")]
    assert actions.count("login_failed") == 5 and "comment" in actions and "user_add" in actions


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill9_mid_stream_loses_and_doubles_nothing(tmp, backend):
    db = Database(backend, tmp)
    add_user(db, "alice", "analyst", PASSWORD)
    console = Console(tmp, db).start()
    n = 2000
    records = [alert(i, f"tok_{i % 300:04d}") for i in range(n)]

    def paced():
        # 40 chunks a little apart, so the stream is still flowing when the console dies.
        for k in range(0, n, 50):
            produce(console.topics["alerts"], records[k:k + 50], key_field="entity_id", one_per_batch=True)
            time.sleep(0.15)
    sender = threading.Thread(target=paced)
    try:
        sender.start()
        wait_for(lambda: db.scalar("SELECT COUNT(*) FROM alerts") >= 50, what="first alerts")
        alice = Client(console)
        assert alice.login("alice", PASSWORD)[0] == 303
        assert alice.post("/cases/1/act", {"op": "comment", "comment": "before the crash", "csrf": alice.csrf})[0] == 303
        assert alice.post("/cases/1/act", {"op": "dispose", "disposition": "confirmed_fraud", "csrf": alice.csrf})[0] == 303
        console.kill9()
        stored_at_kill = db.scalar("SELECT COUNT(*) FROM alerts")
        console.start()
        sender.join(120)
        wait_for(lambda: db.scalar("SELECT COUNT(*) FROM alerts") >= n, timeout=120, what="every alert")
        time.sleep(2)  # anything doubled would show by now
    finally:
        console.stop()
    assert stored_at_kill < n, "the kill happened mid-stream"
    assert db.scalar("SELECT COUNT(*) FROM alerts") == n
    ids = {r[0] for r in db.query("SELECT alert_id FROM alerts")}
    assert ids == {r["alert_id"] for r in records}
    assert db.scalar("SELECT COUNT(*) FROM case_history WHERE action = 'alert'") == n, "each alert joined a case once"
    assert db.scalar("SELECT COUNT(*) FROM cases WHERE status <> 'closed'") == 300
    hist = [tuple(r) for r in db.query("SELECT actor, action, detail FROM case_history WHERE case_id = 1 AND actor = 'alice' ORDER BY id")]
    assert hist == [("alice", "comment", "before the crash"), ("alice", "disposition", "confirmed_fraud")]
    offsets = db.query(f"SELECT SUM(next_offset) FROM ingest_offsets WHERE topic = '{console.topics['alerts']}'")
    assert int(offsets[0][0]) == n


def node_e2e(env, tmp):
    """Start the browser script; it talks over stdin/stdout (READY ... GO ... DONE)."""
    script = ROOT / "tests" / "console" / "e2e.mjs"
    return subprocess.Popen(["node", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(tmp / "node.log", "ab"), text=True, env=dict(os.environ, **env),
                            cwd=ROOT / "tests" / "console")


def at(base, **delta):
    return (base + timedelta(**delta)).isoformat(timespec="milliseconds")


def pin_fail(i, card, ts):
    return {"id": f"x{i}", "ts": ts, "type": "auth", "card": card, "terminal": f"T{i % 3}",
            "merchant": "M1", "entry_mode": "chip", "pin": "entered", "response_code": "55",
            "amount": 1000, "currency": "CNY"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_end_to_end_in_chromium(tmp, backend):
    artifacts = Path(os.environ.get("SWITCHGUARD_ARTIFACTS_DIR", tmp)) / f"console-{backend}"
    artifacts.mkdir(parents=True, exist_ok=True)
    db = Database(backend, tmp)
    add_user(db, "alice", "analyst", PASSWORD)
    svc = Service(tmp).start()
    console = Console(tmp, db, alerts=svc.topics["alerts"], commands=svc.topics["commands"],
                      control=svc.topics["control"], evidence=svc.topics["evidence"]).start()
    node = None
    try:
        node = node_e2e({"CONSOLE_URL": console.url, "CONSOLE_USER": "alice", "CONSOLE_PASSWORD": PASSWORD,
                         "ARTIFACTS": str(artifacts), "LIVE_MIN": "3", "CASE_ENTITY": "CARD-E2E-1",
                         "XSS_ENTITY": "tok_xss", "XSS_TEXT": XSS}, tmp)
        assert node.stdout.readline().strip() == "READY", (tmp / "node.log").read_text()
        # The switch's traffic: three wrong PINs on each of two cards, then a later event that
        # moves the watermark past them. The service raises the alerts and the lock commands.
        # Event times near the wall clock: the console stamps its control records (the release
        # below) with it, and judges locks at the newest time it has seen.
        base = datetime.now(timezone.utc) - timedelta(hours=2)
        events = []
        for c in range(2):
            events += [pin_fail(10 * c + k, f"CARD-E2E-{c + 1}", at(base, minutes=k, seconds=10 * c)) for k in range(3)]
        events.append(dict(pin_fail(99, "CARD-OTHER", at(base, minutes=60)), response_code="00"))
        produce(svc.topics["input"], events, key_field="card")
        # The core's evidence for each alert (risk.evidence), stored by the console.
        wait_for(lambda: len(consume(svc.topics["alerts"], settle=1)) >= 2, what="the service's alerts")
        alerts = [json.loads(v) for v in consume(svc.topics["alerts"], settle=1)]
        wait_for(lambda: db.scalar("SELECT COUNT(*) FROM evidence") >= len(alerts), what="the evidence stored")
        # A hostile alert: markup in the merchant, terminal and reason must show as text.
        produce(svc.topics["alerts"], [alert(7, "tok_xss", merchant=XSS, terminal=f"<img src=x onerror=\"window.__xss=2\">",
                                             reason=f"reason {XSS}")], key_field="entity_id")
        node.stdin.write("GO\n")
        node.stdin.flush()
        line = node.stdout.readline().strip()
        assert line.startswith("DONE "), f"{line}\n{(tmp / 'node.log').read_text()}"
        result = json.loads(line[5:])
        assert node.wait(60) == 0, (tmp / "node.log").read_text()
        # Every metric the Grafana dashboard reads is served.
        board = json.loads((ROOT / "dashboards/grafana/console/risk-console.json").read_text())
        wanted = {m for p in board["panels"] for t in p["targets"]
                  for m in re.findall(r"switchguard_console_[a-z_]+", t["expr"])}
        wait_for(lambda: console.metric("switchguard_console_active_locks") >= 1, what="an active lock in the metrics")
        served = urllib.request.urlopen(f"http://127.0.0.1:{console.metrics_port}/metrics", timeout=10).read().decode()
        assert wanted and all(f"\n{m}" in served for m in wanted), (wanted, served)
        assert console.metric("switchguard_console_rule_precision", rule="pin_consecutive_wrong") == 1.0
        assert "CARD-E2E" not in served, "no key as a label"
        # The core consumed the release from the control topic: the unlock_card command goes to
        # the switch, carrying the analyst and her reason.
        wait_for(lambda: any(json.loads(v).get("action") == "unlock_card" and json.loads(v).get("actor") == "alice"
                             for v in consume(svc.topics["commands"], settle=1)), what="the unlock_card command")
    finally:
        if node and node.poll() is None:
            node.kill()
        console.stop()
        svc.stop()
    assert result["live_rows"] >= 3 and result["explanation"] and result["events"] == 3 and result["features"] >= 3
    assert result["xss_shown_as_text"] and result["xss_executed"] is None
    assert result["disposition"] == "confirmed_fraud"
    # The release went to the switch's control topic as a control record, with the analyst.
    control = [json.loads(v) for v in consume(console.topics["control"], settle=2)]
    unlocks = [c for c in control if c["control"] == "unlock"]
    assert len(unlocks) == 1, control
    u = unlocks[0]
    assert (u["card"], u["actor"], u["reason"]) == ("CARD-E2E-1", "alice", "customer verified by phone")
    assert u["id"].startswith("console-") and re.match(r"\d{4}-\d\d-\d\dT", u["ts"]) and "pan" not in u
    assert db.scalar("SELECT COUNT(*) FROM control WHERE origin = 'console'") == 1
    assert {p.name for p in artifacts.glob("*.png")} >= {"login.png", "inbox.png", "case.png", "overview.png", "precision.png"}
    labels = subprocess.run([os.environ["SWITCHGUARD_BIN"], "console", "labels", "export", "--database", db.url],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    labels = [json.loads(l) for l in labels]
    assert labels and all(l["disposition"] == "confirmed_fraud" and l["actor"] == "alice" and l["entity_id"] == "CARD-E2E-1"
                          for l in labels)
    pin = [l for l in labels if l["rule"] == "pin_consecutive_wrong"]
    assert len(pin) == 1 and pin[0]["event_ids"] == ["x0", "x1", "x2"], labels
