"""Helpers for the console's tests: a fresh database of each backend (a SQLite file, or a new
database on the PostgreSQL cluster scripts/test starts), a `switchguard console serve` child
process on its own ports and topics, and an HTTP client that keeps the session cookie."""
import http.cookiejar
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, binary, broker, free_port

BACKENDS = ["sqlite", "postgres"]


def postgres_url():
    url = os.environ.get("SWITCHGUARD_TEST_POSTGRES")
    if not url:
        pytest.fail("SWITCHGUARD_TEST_POSTGRES is not set: run scripts/test, which starts PostgreSQL")
    return url


class Database:
    """A fresh, empty console database."""

    def __init__(self, backend, tmp: Path):
        self.backend = backend
        if backend == "sqlite":
            self.path = tmp / f"console-{uuid.uuid4().hex[:6]}.db"
            self.url = str(self.path)
        else:
            name = f"sg_{uuid.uuid4().hex[:12]}"
            base = postgres_url()
            subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
            self.url = base.rsplit("/", 1)[0] + "/" + name

    def query(self, sql):
        """Rows of a query, as lists of strings."""
        if self.backend == "sqlite":
            with sqlite3.connect(self.path) as c:
                return [[str(x) for x in r] for r in c.execute(sql).fetchall()]
        out = subprocess.run(["psql", self.url, "-AtF", "\x1f", "-c", sql], check=True,
                             capture_output=True, text=True).stdout
        return [l.split("\x1f") for l in out.splitlines() if l]

    def scalar(self, sql):
        return int(self.query(sql)[0][0])

    def raw_bytes(self):
        """Everything stored, as bytes (the SQLite files, or a dump of the PostgreSQL database)."""
        if self.backend == "sqlite":
            return b"".join(p.read_bytes() for p in self.path.parent.glob(self.path.name + "*"))
        return subprocess.run(["pg_dump", self.url], check=True, capture_output=True).stdout


def add_user(db, name, role, password):
    r = subprocess.run([binary(), "console", "user", "add", name, "--role", role, "--database", db.url],
                       input=password + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


class Console:
    """One `switchguard console serve` process."""

    def __init__(self, tmp: Path, db: Database, alerts="", commands="", control="", evidence="", kafka=True):
        self.id = uuid.uuid4().hex[:8]
        self.db = db
        self.topics = {
            "alerts": alerts or f"alerts-{self.id}",
            "commands": commands or f"commands-{self.id}",
            "control": control or f"control-{self.id}",
            "evidence": evidence or f"evidence-{self.id}",
        }
        self.port = free_port()
        self.metrics_port = free_port()
        self.kafka = kafka
        self.log = tmp / f"console-{self.id}.log"
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        args = [binary(), "console", "serve", "--database", self.db.url,
                "--listen", f"127.0.0.1:{self.port}", "--metrics-addr", f"127.0.0.1:{self.metrics_port}"]
        if self.kafka:
            args += ["--brokers", broker()] + [x for k, v in self.topics.items() for x in (f"--{k}-topic", v)]
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"console exited early:\n{self.log.read_text()}")
            try:
                if Client(self).get("/login")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"console not ready:\n{self.log.read_text()}")

    def metric(self, name, **labels):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(30)
            assert code == 0, f"console exit code {code}:\n{self.log.read_text()}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class Client:
    """HTTP client with its own cookie jar; redirects are returned, not followed."""

    def __init__(self, console):
        self.base = console.url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)
        self.csrf = ""

    def request(self, method, path, data=None, headers=None):
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, data, headers=None):
        return self.request("POST", path, data, headers)

    def login(self, user, password):
        status, body, headers = self.post("/login", {"user": user, "password": password})
        if status == 303:
            s, page, _ = self.get("/inbox")
            assert s == 200, (s, page)
            self.csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        return status, body, headers


def wait_for(pred, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def alert(i, entity_id, rule="pin_consecutive_wrong", ts=None, **kw):
    """An alert in the contract's shape."""
    a = {"alert_id": f"al_{i:032x}", "ts": ts or f"2026-10-01T01:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
         "rule": rule, "severity": "high", "mode": "enforce", "entity": "card", "entity_id": entity_id,
         "card": entity_id, "pan_masked": "622588******0018", "terminal": "T1", "merchant": "M1",
         "event_ids": [f"e{i}a", f"e{i}"], "reason": f"3 consecutive wrong PINs on card 622588******0018 (#{i})",
         "features": {"count": 3, "threshold": 3, "within": "24h", "action": "lock_card", "action_status": "issued"}}
    a.update(kw)
    return a


def dumps(records):
    return [json.dumps(r).encode() for r in records]
