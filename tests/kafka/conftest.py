"""Fixtures for the Kafka integration tests: a real Kafka-protocol broker (tansu, started by
scripts/test), the switchguard binary, and kafka-python as the independent client."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

ROOT = Path(__file__).resolve().parents[2]


def broker():
    b = os.environ.get("SWITCHGUARD_TEST_BROKERS")
    if not b:
        pytest.fail("SWITCHGUARD_TEST_BROKERS is not set: run scripts/test, which starts the broker")
    return b


def binary():
    b = os.environ.get("SWITCHGUARD_BIN")
    if not b or not Path(b).exists():
        pytest.fail("SWITCHGUARD_BIN is not set or missing: run scripts/test")
    return b


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    """A tansu broker of one test's own (in-memory, loopback), for tests that freeze it."""

    def __init__(self, tmp: Path):
        exe = shutil.which("tansu")
        if not exe:
            pytest.fail("tansu is not on PATH: run scripts/test, which installs it")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = tmp / f"tansu-{self.port}.log"
        url = f"tcp://{self.address}"
        self.proc = subprocess.Popen([exe, "broker", "--storage-engine", "memory://tansu/",
                                      "--listener-url", url, "--advertised-listener-url", url],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.1)
        raise AssertionError("tansu did not start")

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.thaw()
        self.proc.terminate()
        self.proc.wait(30)


class Service:
    """One `switchguard run` child process with its own topics, group and metrics port."""

    def __init__(self, tmp: Path, rules: Path = ROOT / "rules", extra: str = "", partitions: int = 4,
                 like: "Service" = None, brokers: str = None, checkpoint_interval: str = "300ms"):
        """like: another instance of the same group (same topics and group, own port)."""
        self.id = uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.topics = like.topics if like else {
            k: f"{k}-{self.id}" for k in ("input", "alerts", "commands", "dlq", "state", "control", "evidence")}
        self.group = like.group if like else f"g-{self.id}"
        self.port = free_port()
        self.rules = rules
        self.config = tmp / f"switchguard-{self.id}.toml"
        topics = "\n".join(f'{k} = "{v}"' for k, v in self.topics.items())
        self.config.write_text(
            f'brokers = "{brokers or broker()}"\ngroup = "{self.group}"\nmetrics_addr = "127.0.0.1:{self.port}"\n'
            f'rules = "{rules}"\npartitions = {partitions}\ncheckpoint_interval = "{checkpoint_interval}"\n{extra}\n'
            f'[topics]\n{topics}\n'
        )
        self.proc = None
        self.log = tmp / f"service-{self.id}.log"

    def start(self):
        env = dict(os.environ, SWITCHGUARD_TOKEN_KEY="integration-test-token-key")
        self.proc = subprocess.Popen(
            [binary(), "run", "--config", str(self.config)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited early:\n{self.log.read_text()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"service not ready:\n{self.log.read_text()}")

    def get(self, path):
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name, **labels):
        """Sum of a metric's samples matching the labels."""
        total = 0.0
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            key, value = line.rsplit(" ", 1)
            if key.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in key for k, v in labels.items()):
                total += float(value)
        return total

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(60)
            assert code == 0, f"exit code {code}:\n{self.log.read_text()}"


def produce(topic, records, key_field="terminal", brokers=None, seconds=None, one_per_batch=False):
    """records: dicts (JSON-encoded, keyed by a field) or raw bytes (keyed by b'raw').
    seconds: spread the sends evenly over about that long (a live feed), else at once.
    one_per_batch: every record in its own record batch, for a consumer that restarts at
    arbitrary offsets without the service's re-seek (the risk console's reader): tansu returns
    nothing for a fetch that starts inside a batch.

    Batched the way a switch's producer batches: kafka-python with a 20 ms linger and a large
    batch size, so each record batch holds many records and a consumer restarting at a
    checkpoint's offset usually starts inside one (the service must neither skip nor repeat
    anything then, on any broker)."""
    # One request in flight: a retried batch can never land after a later one (the switch
    # must keep each partition in event-time order; so must the test's producer).
    p = KafkaProducer(bootstrap_servers=brokers or broker(), linger_ms=20,
                      batch_size=1 if one_per_batch else 1 << 20,
                      max_request_size=4_000_000, max_in_flight_requests_per_connection=1)
    start = time.time()
    for i, r in enumerate(records):
        if seconds and i % 1000 == 0:
            time.sleep(max(0.0, start + seconds * i / len(records) - time.time()))
        if isinstance(r, (bytes, bytearray)):
            p.send(topic, key=b"raw", value=bytes(r))
        else:
            p.send(topic, key=str(r.get(key_field, "")).encode(), value=json.dumps(r).encode())
    p.flush(120)
    p.close()


def consume(topic, settle=3.0, timeout=120, headers=False):
    """Everything in `topic`, reading until nothing new arrives for `settle` seconds."""
    c = KafkaConsumer(topic, bootstrap_servers=broker(), auto_offset_reset="earliest",
                      enable_auto_commit=False, group_id=None, consumer_timeout_ms=int(settle * 1000))
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = False
        for m in c:
            got = True
            out.append((m.key, m.value, m.headers) if headers else m.value)
        if not got:
            break
    c.close()
    return out


def simulate(tmp: Path, **kw):
    path = tmp / f"sim-{uuid.uuid4().hex[:6]}.jsonl"
    args = [binary(), "simulate", "--out", str(path)]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    subprocess.run(args, check=True, capture_output=True)
    return [json.loads(l) for l in path.read_text().splitlines()], path


def replay(tmp: Path, path: Path, rules: Path = ROOT / "rules", lateness="5s", control: Path = None,
           out: Path = None):
    """Alerts and commands of an offline replay (its other outputs stay in `out`)."""
    out = out or tmp / f"replay-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, SWITCHGUARD_TOKEN_KEY="integration-test-token-key")
    extra = ["--control", str(control)] if control else []
    subprocess.run([binary(), "replay", str(path), "--out", str(out), "--rules", str(rules),
                    "--lateness", lateness, "-q"] + extra, check=True, env=env, capture_output=True)
    return ([l.encode() for l in (out / "alerts.jsonl").read_text().splitlines()],
            [l.encode() for l in (out / "commands.jsonl").read_text().splitlines()])


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture
def rules_copy(tmp_path):
    d = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", d)
    return d
