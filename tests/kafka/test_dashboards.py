"""The Grafana dashboards and Prometheus rules of dashboards/, checked against real servers:
promtool's config, rules and metrics checks and the alert unit tests, then one end-to-end run
(switchguard on the broker, a real Prometheus scraping it every second, simulated traffic with
attacks) in which every PromQL expression of every dashboard panel and every alerting rule is
evaluated through Prometheus' HTTP API and must return data."""
import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime

import pytest
import yaml

from conftest import ROOT, Service, free_port, produce, simulate

PROM = ROOT / "dashboards" / "prometheus"
GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
# What Grafana would put in for its built-in variables: a 15 s scrape interval gives a
# $__rate_interval of 1m; $__range is the dashboard's time range (5 minutes here, the traffic
# of this test fits in it).
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
# The rule the rule-detail dashboard is evaluated for, with a week of backfilled history.
RULE = "pin_consecutive_wrong"
BACKFILL_STEP = 15  # seconds
BACKFILL_RATES = {  # per second, constant, so the week-ago query has a known answer
    ("switchguard_rule_hits_total", (("rule", RULE), ("mode", "enforce"))): 0.2,
    ("switchguard_rule_hits_total", (("rule", RULE), ("mode", "shadow"))): 0.0,
    ("switchguard_lockouts_total", (("rule", RULE), ("action", "lock_card"))): 1 / 15,
    ("switchguard_lockouts_held_total", (("rule", RULE),)): 0.0,
}


def promtool(*args, stdin=None):
    r = subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, cwd=PROM)
    assert r.returncode == 0, f"promtool {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def alert_rules():
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def panels(board):
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


def targets():
    """(dashboard file, panel title, target) for every query of every panel."""
    for f in DASHBOARDS:
        for p in panels(json.loads(f.read_text())):
            for t in p.get("targets", []):
                yield f.name, p["title"], t


def substitute(expr, variables):
    for k in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + k[1:] + "}", variables[k]).replace(k, variables[k])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def signal(expr):
    """An alert expression with its top-level comparisons made `bool` comparisons.

    An alert's expression filters: it returns series only while the condition holds, so
    "returns nothing" cannot tell a quiet system from a broken query. `a > bool b` compares the
    same two sides but returns every series of `a` (0 or 1) instead of filtering, so the whole
    expression, thresholds and `and` joins included, is evaluated and must return data on a
    running system whether the alert fires or not. alerts.yml keeps its comparisons at the top
    level (outside parentheses) for this; each alert must have at least one."""
    out, depth, quote, i, n = [], 0, None, 0, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(expr[i:i + 2] if c == "\\" else c)
            i += 2 if c == "\\" else 1
            if c == quote:
                quote = None
            continue
        if c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            op = next((o for o in COMPARISONS if expr.startswith(o, i)), None)
            if op and not expr.startswith("~", i + 1):
                out.append(op + " bool")
                i += len(op)
                n += 1
                continue
        out.append(c)
        i += 1
    assert n, f"no top-level comparison in {expr}"
    return "".join(out)


def test_prometheus_config_rules_and_alert_unit_tests():
    promtool("check", "config", "prometheus.yml")
    promtool("check", "rules", "alerts.yml")
    out = promtool("test", "rules", "tests/alerts_test.yml")
    assert "SUCCESS" in out
    # Every alert has a case where it fires and one where it does not.
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    for rule in alert_rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{rule['alert']}: no firing case"
        assert any(not c.get("exp_alerts") for c in mine), f"{rule['alert']}: no quiet case"


def test_dashboards_are_ready_for_provisioning():
    assert {f.name for f in DASHBOARDS} == {"risk-overview.json", "service-health.json", "rule-detail.json"}
    uids = set()
    for f in DASHBOARDS:
        board = json.loads(f.read_text())
        assert board["uid"] not in uids and len(board["uid"]) <= 40
        uids.add(board["uid"])
        assert "id" not in board or board["id"] is None, "provisioned dashboards carry no database id"
        variables = {v["name"]: v for v in board["templating"]["list"]}
        ds = variables["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), f"{f.name}: panel ids repeat"
        for p in panels(board):
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{f.name}: {p['title']} overflows the grid"
            if p["type"] == "row":
                continue
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"] and p.get("description"), p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}" and t["expr"], p["title"]
        for v in variables.values():
            if v["type"] == "query":
                assert v["datasource"]["uid"] == "${datasource}"
    for y in (GRAFANA / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(y.read_text())["apiVersion"] == 1
    # Every metric a dashboard or alert reads is one the service exports.
    source = (ROOT / "src" / "service" / "metrics.rs").read_text()
    used = set()
    for _, _, t in targets():
        used |= set(re.findall(r"switchguard_[a-z_]+", t["expr"]))
    for r in alert_rules():
        used |= set(re.findall(r"switchguard_[a-z_]+", r["expr"]))
    for name in used:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f'"{base}"' in source, f"{name} is not a metric of src/service/metrics.rs"


# ---------------------------------------------------------------------------------------
# End to end


class Prometheus:
    """A real Prometheus on a free port, its TSDB in a temporary directory."""

    def __init__(self, tmp, target):
        self.dir = tmp / "prometheus"
        self.tsdb = self.dir / "tsdb"
        self.tsdb.mkdir(parents=True)
        cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
        cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
        cfg["rule_files"] = [str(PROM / f) for f in cfg["rule_files"]]
        [job] = cfg["scrape_configs"]
        job["static_configs"] = [{"targets": [target]}]
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.port = free_port()
        self.log = self.dir / "prometheus.log"
        self.proc = None

    def backfill(self, openmetrics: str):
        f = self.dir / "backfill.om"
        f.write_text(openmetrics)
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                            str(f), str(self.tsdb)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    def start(self):
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.tsdb}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=30d"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready:\n{self.log.read_text()}")

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr, time=time.time())["result"]

    def query_range(self, expr, seconds=120, step=5):
        now = time.time()
        return self.api("query_range", query=expr, start=now - seconds, end=now, step=step)["result"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def backfill_openmetrics(instance, now):
    """A week and a day of history for RULE, up to 15 minutes ago, at BACKFILL_RATES."""
    start, end = now - 8 * 86400, now - 900
    lines, families = [], {}
    for (name, labels), rate in BACKFILL_RATES.items():
        families.setdefault(name, []).append((labels, rate))
    for name, series in families.items():
        lines.append(f"# TYPE {name.removesuffix('_total')} counter")
        for labels, rate in series:
            ls = ",".join([f'job="switchguard"', f'instance="{instance}"', *(f'{k}="{v}"' for k, v in labels)])
            for i, t in enumerate(range(start, end, BACKFILL_STEP)):
                lines.append(f"{name}{{{ls}}} {round(i * BACKFILL_STEP * rate, 6)} {t}")
    return "\n".join(lines) + "\n# EOF\n"


def epoch_ms(ts):
    return int(datetime.fromisoformat(ts).timestamp() * 1000) if isinstance(ts, str) else int(ts)


def attack(n, now_ms):
    """Three wrong PINs on a fresh card: a pin_consecutive_wrong lockout."""
    return [{"id": f"live-{n}-{k}", "ts": now_ms + k, "type": "auth", "card": f"LIVE-{n}",
             "terminal": f"TL{n % 7}", "merchant": "ML", "entry_mode": "chip", "pin": "entered",
             "response_code": "55", "amount": 1000, "currency": "CNY"} for k in range(3)]


def legit(n, now_ms):
    return {"id": f"live-ok-{n}", "ts": now_ms, "type": "auth", "card": f"OK-{n}", "terminal": f"TL{n % 7}",
            "merchant": "ML", "entry_mode": "contactless", "pin": "absent", "response_code": "00",
            "amount": 2500, "currency": "CNY"}


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def has_value(result):
    """Some sample is a number. NaN is what a 0/0 ratio or a histogram without observations
    gives: a panel would show nothing useful."""
    samples = [v for s in result for v in (s["values"] if "values" in s else [s["value"]])]
    return any(not math.isnan(float(v)) for _, v in samples)


def test_every_panel_and_alert_returns_data_on_a_running_service(tmp):
    # The guard at 3 lockouts a minute, so held lockouts and guard alerts happen too.
    svc = Service(tmp, extra="max_lockouts_per_minute = 3").start()
    prom = None
    try:
        promtool("check", "metrics", stdin=svc.get("/metrics")[1])
        instance = f"127.0.0.1:{svc.port}"
        now = int(time.time())
        prom = Prometheus(tmp, instance)
        prom.backfill(backfill_openmetrics(instance, now))
        prom.start()
        # Static targets reach the scrape loop a few seconds after start: see the counters at 0.
        wait_for(lambda: prom.query('switchguard_up{job="switchguard"} == 1'), 30, "the first scrape")

        # Simulated history with every attack scenario, moved to end two minutes ago, then
        # 15 seconds of live traffic (event time = now) with a PIN attack every half second.
        events, _ = simulate(tmp, cards=400, days=2, terminals=80, seed=11, attack_rate=10)
        shift = (now - 120) * 1000 - max(epoch_ms(e["ts"]) for e in events)
        for e in events:
            e["ts"] = epoch_ms(e["ts"]) + shift
        produce(svc.topics["input"], events + [b"not json", b'{"id":"x"}'])
        n = 0
        until = time.time() + 15
        while time.time() < until:
            now_ms = int(time.time() * 1000)
            produce(svc.topics["input"], attack(n, now_ms) + [legit(n, now_ms)])
            n += 1
            time.sleep(0.5)
        wait_for(lambda: svc.metric("switchguard_events_total") + svc.metric("switchguard_duplicates_total")
                 >= len(events) + 4 * n - 20, 60, "the traffic to be processed")
        wait_for(lambda: has_value(prom.query("sum(switchguard_lockouts_held_total) > 0")), 30,
                 "Prometheus to scrape held lockouts")
        promtool("check", "metrics", stdin=svc.get("/metrics")[1])

        # Every variable resolves; the rule of the backfilled history is among the values.
        variables = dict(BUILTINS, **{"$datasource": "prometheus"})
        for f in DASHBOARDS:
            for v in json.loads(f.read_text())["templating"]["list"]:
                if v["type"] != "query":
                    continue
                m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", v["query"])
                assert m, f"{f.name}: unsupported variable query {v['query']}"
                values = prom.api(f"label/{m[2]}/values", **{"match[]": m[1]})
                assert values, f"{f.name}: variable {v['name']} has no values"
                assert v["name"] != "rule" or RULE in values
                variables["$" + v["name"]] = RULE if v["name"] == "rule" else values[0]

        # Every panel query returns data: range queries over the last two minutes as a
        # time-series panel draws them, instant queries as stat and bar panels read them.
        empty = []
        for board, title, t in targets():
            expr = substitute(t["expr"], variables)
            result = prom.query(expr) if t.get("instant") else prom.query_range(expr)
            if not has_value(result):
                empty.append(f"{board}: {title}: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)

        # Every alerting rule: its signal returns data, and Prometheus evaluates it cleanly.
        for r in alert_rules():
            assert has_value(prom.query(signal(r["expr"]))), f"{r['alert']}: no data for {signal(r['expr'])}"
        wait_for(lambda: all(r.get("lastEvaluation", "").startswith("2")
                             for g in prom.api("rules")["groups"] for r in g["rules"]), 10, "rule evaluation")
        loaded = {r["name"]: r for g in prom.api("rules")["groups"] for r in g["rules"]}
        assert set(loaded) == {r["alert"] for r in alert_rules()}
        for name, r in loaded.items():
            assert r["health"] == "ok", f"{name}: {r.get('lastError')}"

        # The week-ago baseline reads the backfilled history at its known rate.
        week_ago = substitute(f'sum(rate(switchguard_rule_hits_total{{rule="$rule"}}[$__rate_interval] offset 1w))',
                              variables)
        [s] = prom.query(week_ago)
        assert float(s["value"][1]) == pytest.approx(0.2, rel=0.05)
        [s] = prom.query(f'sum(rate(switchguard_lockouts_total{{rule="{RULE}"}}[1m] offset 1w))')
        assert float(s["value"][1]) == pytest.approx(1 / 15, rel=0.05)

        # What happened shows: alerts by rule, lockouts, held lockouts, the guard's alerts.
        def now_value(expr):
            return sum(float(s["value"][1]) for s in prom.query(expr))
        assert now_value("sum(increase(switchguard_events_total[5m]))") > len(events) / 2
        assert now_value(f'sum(increase(switchguard_lockouts_total{{rule="{RULE}"}}[5m]))') >= 3
        assert now_value('sum(increase(switchguard_alerts_total{rule="lockout_guard",severity="critical"}[5m]))') >= 1
        assert len(prom.query("sum by (rule) (increase(switchguard_alerts_total[5m])) > 0")) >= 5
        assert now_value("sum(increase(switchguard_rejects_total[5m]))") >= 2
    finally:
        if prom:
            prom.stop()
        svc.stop()
