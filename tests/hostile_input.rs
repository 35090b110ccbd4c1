//! Hostile and careless input to `replay`, as an attacker or a tired operator would give it:
//! truncated or padded gzip, an input that is also an output, standard input and pipes, byte
//! order marks, blank lines, bad CSV rows and headers, Parquet types, bad keys, implausible
//! times. Each must end with a clear error or a counted reject, never a hang, a crash or a
//! silent loss.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "hostile-input-test-key-0123456789";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchguard"));
    c.env("SWITCHGUARD_TOKEN_KEY", KEY)
        .env_remove("SWITCHGUARD_TOKEN_KEY_FILE");
    c
}

fn replay(inputs: &[&Path], out: &Path) -> Output {
    run_with_timeout(
        bin()
            .arg("replay")
            .args(inputs)
            .arg("--out")
            .arg(out)
            .arg("--rules")
            .arg(root().join("rules"))
            .arg("--models")
            .arg(root().join("models"))
            .arg("-q"),
        None,
    )
}

/// Run with a deadline (a hang is a failure, not a stuck test); `stdin` piped in when given.
fn run_with_timeout(cmd: &mut Command, stdin: Option<Vec<u8>>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("timed out: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&read(&out.join("report.json"))).unwrap()
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    read(p)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A small attack: three wrong PINs on one card (one lock command).
fn attack() -> String {
    let mut s = String::new();
    for i in 0..3 {
        s.push_str(&format!(
            r#"{{"id":"w{i}","ts":"2026-10-01T10:0{i}:00+08:00","type":"auth","card":"C1","terminal":"T1","merchant":"M1","entry_mode":"chip","pin":"entered","response_code":"55"}}"#
        ));
        s.push('\n');
    }
    s
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn assert_accounted(r: &serde_json::Value) {
    let n = |k: &str| r[k].as_u64().unwrap();
    assert_eq!(
        n("records"),
        n("events") + n("duplicates") + n("rejects") + n("blank"),
        "{r:#}"
    );
}

#[test]
fn truncated_or_padded_gzip_ends_with_one_reject_not_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = String::new();
    for _ in 0..2000 {
        big.push_str(&attack());
    }
    let gz = gzip(big.as_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", gz[..gz.len() * 2 / 3].to_vec()),
        (
            "garbage",
            [gz.clone(), b"\x00garbage after the stream".to_vec()].concat(),
        ),
        (
            "second-member-cut",
            [gz.clone(), gz[..40].to_vec()].concat(),
        ),
    ];
    for (name, data) in cases {
        let input = dir.path().join(format!("{name}.jsonl.gz"));
        std::fs::write(&input, data).unwrap();
        let out = dir.path().join(name);
        let o = replay(&[&input], &out);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let rejects = lines(&out.join("rejects.jsonl"));
        let read_errors: Vec<_> = rejects
            .iter()
            .filter(|r| r["reason_code"] == "read_error")
            .collect();
        assert_eq!(read_errors.len(), 1, "{name}: {rejects:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("read error"),
            "{name}"
        );
        let r = report(&out);
        assert!(
            r["events"].as_u64().unwrap() > 0,
            "{name}: what was readable is read"
        );
        assert_accounted(&r);
    }
}

#[test]
fn an_input_that_is_also_an_output_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first = dir.path().join("in.jsonl");
    std::fs::write(&first, attack() + "not json\n").unwrap();
    assert!(replay(&[&first], &out).status.success());
    let rejects = out.join("rejects.jsonl");
    let before = read(&rejects);
    assert!(!before.is_empty());
    // Named directly, through another spelling, and through a symlink.
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&rejects, &link).unwrap();
    let other = dir.path().join("out/../out/rejects.jsonl");
    for input in [rejects.clone(), other, link] {
        let o = replay(&[&input], &out);
        assert_eq!(o.status.code(), Some(2), "{input:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("is the output"));
        assert_eq!(read(&rejects), before, "the input is untouched");
    }
}

#[test]
fn standard_input_and_pipes_lose_no_byte_plain_or_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, attack()).unwrap();
    let want = read(&{
        let out = dir.path().join("want");
        assert!(replay(&[&file], &out).status.success());
        out.join("alerts.jsonl")
    });
    assert!(!want.is_empty());
    for (name, path, data) in [
        ("dash", "-", attack().into_bytes()),
        ("dash-gz", "-", gzip(attack().as_bytes())),
        ("dev-stdin", "/dev/stdin", attack().into_bytes()),
        ("dev-stdin-gz", "/dev/stdin", gzip(attack().as_bytes())),
    ] {
        let out = dir.path().join(name);
        let o = run_with_timeout(
            bin()
                .args(["replay", path, "-q", "--out"])
                .arg(&out)
                .arg("--rules")
                .arg(root().join("rules"))
                .arg("--models")
                .arg(root().join("models")),
            Some(data),
        );
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(read(&out.join("alerts.jsonl")), want, "{name}");
        assert_eq!(report(&out)["rejects"], 0, "{name}");
    }
}

#[test]
fn bom_and_blank_lines_are_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let text = format!("\u{feff}{}\n\n   \r\n{}", attack(), "{\"id\":\"x\"}\n\n");
    std::fs::write(&input, &text).unwrap();
    let out = dir.path().join("out");
    assert!(replay(&[&input], &out).status.success());
    let r = report(&out);
    assert_eq!(r["events"], 3, "the first event, after the BOM, is read");
    assert_eq!(r["blank"], 4);
    assert_eq!(r["rejects"], 1);
    assert_eq!(r["records"], text.lines().count() as u64);
    assert_accounted(&r);
}

#[test]
fn csv_rows_are_rejected_one_by_one_and_headers_are_forgiven_or_explained() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let mut data = b"ID;TS;TYPE;CARD;TERMINAL;MERCHANT;ENTRY_MODE;PIN;RESPONSE_CODE\n".to_vec();
    for i in 0..3 {
        data.extend_from_slice(
            format!("w{i};2026-10-01T10:0{i}:00+08:00;auth;C1;T1;M1;chip;entered;55\n").as_bytes(),
        );
        data.extend_from_slice(b"bad;row;\"unclosed\n");
        data.extend_from_slice(b"bad;2026-10-01T10:00:00Z;auth;C2;T\xff;M1;chip;entered;55\n");
        data.extend_from_slice(b"bad;2026-10-01T10:00:00Z;auth;C2;T1;M1;chip;entered;55;extra\n");
    }
    std::fs::write(&csv, data).unwrap();
    let bad_header = dir.path().join("bad.csv");
    std::fs::write(&bad_header, "ident,when\n1,2\n3,4\n").unwrap();
    let out = dir.path().join("out");
    let o = replay(&[&csv, &bad_header], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&out);
    assert_eq!(r["events"], 3);
    assert_eq!(r["rejects_by_reason"]["malformed_row"], 6);
    assert_eq!(r["rejects_by_reason"]["invalid_utf8"], 3);
    assert_eq!(r["rejects_by_reason"]["bad_header"], 2);
    assert_accounted(&r);
    assert_eq!(
        lines(&out.join("commands.jsonl")).len(),
        1,
        "the attack is caught"
    );
    let rejects = lines(&out.join("rejects.jsonl"));
    assert!(rejects
        .iter()
        .any(|r| r["source"].as_str().unwrap().ends_with("in.csv:row 2")));
    let header = rejects
        .iter()
        .find(|r| r["reason_code"] == "bad_header")
        .unwrap();
    assert!(header["reason"]
        .as_str()
        .unwrap()
        .contains("no id, ts, type, terminal column"));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("bad header")
            .count(),
        1,
        "said once"
    );
}

#[test]
fn parquet_timestamps_are_event_time_and_a_bad_cell_costs_one_row() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.parquet");
    let ms = [
        1_790_820_000_000i64,
        1_790_820_060_000,
        1_790_820_120_000,
        1_790_820_180_000,
    ];
    let ts = Series::new("TS".into(), ms.iter().map(|m| m * 1000).collect::<Vec<_>>())
        .cast(&DataType::Datetime(
            TimeUnit::Microseconds,
            TimeZone::opt_try_new(Some("Asia/Shanghai")).unwrap(),
        ))
        .unwrap();
    let qr: Vec<Option<&[u8]>> = vec![None, None, Some(b"\xff\xfe"), None];
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("id".into(), ["w0", "w1", "w2", "w3"]).into(),
        ts.into(),
        Series::new("type".into(), ["auth"; 4]).into(),
        Series::new("card".into(), ["C1"; 4]).into(),
        Series::new("terminal".into(), ["T1"; 4]).into(),
        Series::new("merchant".into(), ["M1"; 4]).into(),
        Series::new("pin".into(), ["entered"; 4]).into(),
        Series::new("response_code".into(), ["55"; 4]).into(),
        Series::new("qr_ref".into(), qr).into(),
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    let out = dir.path().join("out");
    let o = replay(&[&path], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&out);
    assert_eq!(r["events"], 3);
    assert_eq!(r["rejects_by_reason"]["malformed_row"], 1);
    let reject = &lines(&out.join("rejects.jsonl"))[0];
    assert!(
        reject["source"].as_str().unwrap().ends_with(":row 3"),
        "{reject}"
    );
    assert!(
        reject["reason"].as_str().unwrap().contains("qr_ref"),
        "{reject}"
    );
    let cmds = lines(&out.join("commands.jsonl"));
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        cmds[0]["ts"], "2026-10-01T02:03:00.000Z",
        "the timestamp column is event time"
    );
}

#[test]
fn every_key_problem_stops_the_process_with_exit_2() {
    use std::os::unix::ffi::OsStringExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, attack()).unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let run = |env: Option<std::ffi::OsString>, file: Option<&Path>, out: &str| {
        let mut c = bin();
        c.env_remove("SWITCHGUARD_TOKEN_KEY");
        if let Some(v) = env {
            c.env("SWITCHGUARD_TOKEN_KEY", v);
        }
        c.arg("replay");
        if let Some(f) = file {
            c.arg("--token-key-file").arg(f);
        }
        let out = dir.path().join(out);
        let o = run_with_timeout(
            c.arg(&input)
                .arg("-q")
                .arg("--out")
                .arg(&out)
                .arg("--rules")
                .arg(root().join("rules"))
                .arg("--models")
                .arg(root().join("models")),
            None,
        );
        (o, out)
    };
    for (name, env) in [
        ("short", Some("short".into())),
        ("empty", Some("\n".into())),
        ("conflict", Some("another-key-entirely-0123456789".into())),
    ] {
        let file = (name == "conflict").then_some(key_file.as_path());
        let (o, _) = run(env, file, name);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("token key"), "{name}: {err}");
    }
    let (o, _) = run(None, Some(&dir.path().join("missing")), "missing");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("token key file"));
    // Not UTF-8: still a key, and used (not the development key).
    let (o, _) = run(
        Some(std::ffi::OsString::from_vec(vec![0xff; 24])),
        None,
        "binary",
    );
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("development key"));
    // A trailing newline in the file gives the tokens of the key in the environment.
    let (a, out_a) = run(Some(KEY.into()), None, "env");
    let (b, out_b) = run(None, Some(&key_file), "file");
    assert!(a.status.success() && b.status.success());
    assert_eq!(
        read(&out_a.join("alerts.jsonl")),
        read(&out_b.join("alerts.jsonl"))
    );
}

#[test]
fn implausible_times_are_rejected_and_currencies_are_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let ev = |id: &str, ts: &str, cur: &str| {
        format!(
            r#"{{"id":"{id}","ts":{ts},"type":"auth","card":"C{id}","terminal":"T1","merchant":"M1","amount":150000,"currency":"{cur}","entry_mode":"chip","pin":"bypassed","response_code":"00"}}"#
        )
    };
    let text = [
        ev("s", "1790820000", "CNY"),
        ev("y", "\"9999-12-31T00:00:00Z\"", "CNY"),
        ev("u", "1790820000000000", "CNY"),
        ev("l", "1790820000000", "cny"),
        ev("n", "1790820001000", "156"),
    ]
    .join("\n");
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    assert!(replay(&[&input], &out).status.success());
    let rejects = lines(&out.join("rejects.jsonl"));
    let reasons: Vec<&str> = rejects
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("epoch seconds"));
    assert!(reasons[1].contains("implausible"));
    assert!(reasons[2].contains("microseconds"));
    let alerts = lines(&out.join("alerts.jsonl"));
    let bypass: Vec<_> = alerts
        .iter()
        .filter(|a| a["rule"] == "nopin_bypass_over_limit")
        .collect();
    assert_eq!(
        bypass.len(),
        2,
        "lowercase and numeric CNY are screened: {alerts:?}"
    );
}

#[test]
fn a_late_lock_starts_at_stream_time_not_already_expired() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    // Two wrong PINs, a day of other traffic, then the third wrong PIN arriving 30 hours late.
    let mut text = String::new();
    let w = |id: &str, ts: &str| {
        format!(
            r#"{{"id":"{id}","ts":"{ts}","type":"auth","card":"C1","terminal":"T1","merchant":"M1","entry_mode":"chip","pin":"entered","response_code":"55"}}"#
        )
    };
    text.push_str(&(w("w1", "2026-10-01T10:00:00Z") + "\n"));
    text.push_str(&(w("w2", "2026-10-01T10:01:00Z") + "\n"));
    text.push_str(r#"{"id":"later","ts":"2026-10-02T16:00:00Z","type":"sign_on","terminal":"T2","response_code":"00"}"#);
    text.push('\n');
    text.push_str(&(w("w3", "2026-10-01T10:02:00Z") + "\n"));
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let o = replay(&[&input], &out);
    assert!(o.status.success());
    assert_eq!(report(&out)["late"], 1);
    let cmds = lines(&out.join("commands.jsonl"));
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    assert_eq!(
        cmds[0]["ts"], "2026-10-01T10:02:00.000Z",
        "the triggering event's time"
    );
    assert_eq!(
        cmds[0]["expires_at"], "2026-10-03T15:59:55.000Z",
        "24 h from the watermark (16:00 less the 5 s lateness), not from the late event's \
         time (that lock would have expired before it was sent)"
    );
}
