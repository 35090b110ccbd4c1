"""The other side of the control stream, for the kill -9 test: what a switch (acknowledgements,
some rejected, some never sent) and an analyst (releases, manual terminal locks, extensions)
send on `switch.control`, and a producer that writes them among the transactions the way the
control contract asks (README "Control records"): each control record is in its topic before
any transaction stamped after it."""
import json
from datetime import datetime, timedelta, timezone

from kafka import KafkaProducer

from conftest import broker


def when(ts):
    """An event's or command's time, as a datetime."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def stamp(t):
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def switch_and_analyst(commands, events):
    """Control records for the commands an uninterrupted run gives, and manual actions on a
    few terminals of `events`."""
    out = []
    for n, raw in enumerate(commands):
        c = json.loads(raw)
        at = when(c["ts"])
        if n % 5 != 4:  # every fifth command is never acknowledged: it goes overdue
            status = "rejected" if n % 7 == 3 else "applied"
            out.append({"id": f"ack-{n}", "ts": stamp(at + timedelta(seconds=2)), "control": "ack",
                        "command_id": c["command_id"], "status": status, "detail": "test switch"})
        if c["action"] == "lock_card" and n % 3 == 0:  # released by an analyst; attacks go on
            out.append({"id": f"release-{n}", "ts": stamp(at + timedelta(minutes=10)),
                        "control": "unlock", "card": c["target"],
                        "reason": "cardholder verified by phone", "actor": "alice"})
    step = len(events) // 5
    for k in range(1, 5):
        e = events[k * step]
        at = when(e["ts"])
        t = e.get("terminal") or "T1"
        out += [
            {"id": f"manual-lock-{k}", "ts": stamp(at), "control": "lock", "terminal": t,
             "ttl": "6h", "reason": "skimmer reported", "actor": "bob"},
            {"id": f"manual-extend-{k}", "ts": stamp(at + timedelta(hours=1)), "control": "extend",
             "terminal": t, "ttl": "24h", "reason": "police report pending", "actor": "bob"},
            {"id": f"manual-unlock-{k}", "ts": stamp(at + timedelta(hours=3)), "control": "unlock",
             "terminal": t, "reason": "skimmer removed", "actor": "carol"},
        ]
    return out


def timeline(events, controls):
    """Transactions and control records in event-time order, a control record before the
    transactions of its millisecond."""
    keyed = [(when(c["ts"]), 0, i, ("control", c)) for i, c in enumerate(controls)]
    keyed += [(when(e["ts"]), 1, i, ("input", e)) for i, e in enumerate(events)]
    return [item for *_, item in sorted(keyed, key=lambda k: k[:3])]


def produce_timeline(topics, items):
    """Write (topic role, record) items in order: transactions keyed by terminal, batched as a
    switch batches them (20 ms linger); each control record is flushed before anything after
    it is sent, so it is in the log before the transactions that follow it."""
    p = KafkaProducer(bootstrap_servers=broker(), linger_ms=20, batch_size=1 << 20,
                      max_request_size=4_000_000, max_in_flight_requests_per_connection=1)
    for role, r in items:
        if role == "control":
            p.send(topics["control"], key=r["id"].encode(), value=json.dumps(r).encode())
            p.flush(60)
        else:
            p.send(topics["input"], key=str(r.get("terminal", "")).encode(), value=json.dumps(r).encode())
    p.flush(120)
    p.close()


def lock_records(document):
    """Lock records without what depends on when they are judged (`as_of`, `state`)."""
    locks = json.loads(document)["locks"]
    return sorted((json.dumps({k: v for k, v in r.items() if k != "state"}, sort_keys=True) for r in locks))
