//! The replay's `report.html` in a real browser: `switchguard simulate` writes a labelled
//! history, `switchguard replay` turns it into a report, and headless Chromium (Debian's
//! `chromium`) loads it from disk. The page must render with no console message at all (no
//! script error, no blocked fetch: the page's Content-Security-Policy forbids every fetch, so a
//! reference to anything outside the file shows up as a console message), its inline self-check
//! must find every chart drawn, and the rendered DOM must hold the SVG charts. No clear PAN of
//! the input may appear. A screenshot is kept as an artifact.
//!
//! Without Chromium the test is skipped with a loud message, unless
//! `SWITCHGUARD_REQUIRE_CHROMIUM=1` (set by `scripts/test`), which makes it fail instead.
//! Artifacts (traffic, replay outputs, `dom.html`, `report.png`) go to
//! `$SWITCHGUARD_ARTIFACTS_DIR`, default `<target>/tmp/html-report/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SWITCHGUARD_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty browser cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: t_out.join().unwrap().unwrap(),
        stderr: t_err.join().unwrap().unwrap(),
    }
}

fn browser(chromium: &Path, profile: &Path, args: &[String]) -> Output {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    let o = run(&mut cmd, Duration::from_secs(60));
    assert!(
        o.status.success(),
        "chromium failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Console messages the page produced (Chromium logs them as `CONSOLE` lines on stderr).
fn console_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

fn attr<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let i = html.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&html[i..i + html[i..].find('"')?])
}

#[test]
fn replay_report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        if std::env::var("SWITCHGUARD_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("chromium not found and SWITCHGUARD_REQUIRE_CHROMIUM=1 (apt-get install -y chromium)");
        }
        eprintln!(
            "\n{0}\n!!! SKIPPED replay_report_renders_in_headless_chromium: no chromium in PATH.\n\
             !!! Install Debian's chromium (apt-get install -y chromium) or run scripts/test.\n{0}\n",
            "!".repeat(78)
        );
        return;
    };
    let art = std::env::var_os("SWITCHGUARD_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report"));
    let _ = std::fs::remove_dir_all(&art);
    std::fs::create_dir_all(&art).unwrap();
    let bin = env!("CARGO_BIN_EXE_switchguard");
    let traffic = art.join("traffic.jsonl");
    let out = art.join("replay");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");

    let o = run(
        Command::new(bin)
            .args(["simulate", "--seed", "11", "--cards", "400", "--days", "5"])
            .args(["--terminals", "100", "--out"])
            .arg(&traffic),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        Command::new(bin)
            .arg("replay")
            .arg(&traffic)
            .arg("--rules")
            .arg(&rules)
            .arg("--out")
            .arg(&out)
            .arg("--quiet"),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = out.join("report.html");
    let html = std::fs::read_to_string(&report).expect("replay writes report.html");

    // No clear PAN of the input anywhere in the report.
    let text = std::fs::read_to_string(&traffic).unwrap();
    let mut pans = std::collections::HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(p) = v.get("pan").and_then(|p| p.as_str()) {
            pans.insert(p.to_string());
        }
    }
    assert!(!pans.is_empty(), "the simulator writes clear PANs");
    for p in &pans {
        assert!(!html.contains(p.as_str()), "clear PAN {p} in report.html");
    }

    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let profile = tempfile::tempdir().unwrap();
    let o = browser(
        &chromium,
        profile.path(),
        &["--dump-dom".into(), url.clone()],
    );
    let dom = String::from_utf8(o.stdout).unwrap();
    std::fs::write(art.join("dom.html"), &dom).unwrap();
    let console = console_lines(&o.stderr);
    assert!(
        console.is_empty(),
        "the page logged to the console (script error or blocked fetch):\n{}",
        console.join("\n")
    );
    let want: usize = attr(&dom, "data-expected-charts")
        .expect("expected chart count")
        .parse()
        .unwrap();
    assert!(want >= 2, "alerts and lockouts timelines at least");
    assert_eq!(
        attr(&dom, "data-selfcheck"),
        Some("ok"),
        "self-check verdict; footer: {:?}",
        dom.find("id=\"selfcheck\"")
            .map(|i| &dom[i..(i + 300).min(dom.len())])
    );
    assert_eq!(
        attr(&dom, "data-charts-drawn"),
        Some(want.to_string().as_str())
    );
    assert_eq!(dom.matches("<svg").count(), want);
    for chart in ["data-chart=\"alerts\"", "data-chart=\"lockouts\""] {
        assert!(dom.contains(chart), "{chart}");
    }
    // Lines were drawn: the simulated history has alerts and lockouts.
    assert!(dom.matches("<polyline").count() >= 2);
    for section in ["summary", "timeline", "rules", "entities", "models"] {
        assert!(dom.contains(&format!("id=\"{section}\"")), "{section}");
    }
    assert!(
        dom.contains("<th>precision</th>"),
        "labelled input: precision"
    );

    let png = art.join("report.png");
    let o = browser(
        &chromium,
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2400".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    assert!(console_lines(&o.stderr).is_empty());
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
    eprintln!(
        "report: {}\nscreenshot: {}",
        report.display(),
        png.display()
    );
}
