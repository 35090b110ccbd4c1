//! `switchguard locks`: the lock records, from a replay's output directory (`locks.json`) or a
//! running service (`GET /locks` on its HTTP port). One listing shape for both
//! ([`crate::decision::locks::document`]); filtered by target or to the locks in force.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct LocksArgs {
    /// A replay output directory (or its `locks.json`).
    #[arg(required_unless_present = "service", conflicts_with = "service")]
    pub dir: Option<PathBuf>,
    /// A running service's HTTP address, e.g. http://127.0.0.1:9100 (its metrics port).
    #[arg(long)]
    pub service: Option<String>,
    /// Only the records on this target: a card token, a masked PAN or a terminal id.
    #[arg(long)]
    pub target: Option<String>,
    /// Only the locks in force.
    #[arg(long)]
    pub active: bool,
    /// The records as JSON (the listing document) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn command(a: LocksArgs) -> Result<ExitCode> {
    let mut doc = match (&a.dir, &a.service) {
        (Some(d), _) => from_dir(d)?,
        (None, Some(url)) => from_service(url, a.target.as_deref())?,
        (None, None) => bail!("give a replay output directory or --service URL"),
    };
    filter(&mut doc, a.target.as_deref(), a.active);
    if a.json {
        let text = crate::pan::masked_json_pretty(&doc)?;
        std::io::stdout().write_all(&text)?;
        println!();
    } else {
        print!("{}", table(&doc));
    }
    Ok(ExitCode::SUCCESS)
}

/// Replay's `locks.json`: every lock record of `engine`, judged at its stream time.
pub fn write(path: &std::path::Path, engine: &crate::engine::Engine) -> Result<()> {
    let doc = crate::decision::locks::document(
        engine.locks().records(),
        engine.clock().unwrap_or_default(),
        None,
    );
    std::fs::write(path, crate::pan::masked_json_pretty(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The table of a running service's lock records, its first `rows` locks.
pub fn service_table(url: &str, rows: usize) -> Result<String> {
    let mut doc = from_service(url, None)?;
    let mut total = 0;
    if let Some(Value::Array(l)) = doc.get_mut("locks") {
        total = l.len();
        l.truncate(rows);
    }
    let more = total.saturating_sub(rows);
    let note = if more > 0 {
        format!("(and {more} older)\n")
    } else {
        String::new()
    };
    Ok(format!("{}{note}", table(&doc)))
}

fn from_dir(d: &std::path::Path) -> Result<Value> {
    let path = if d.is_dir() {
        d.join("locks.json")
    } else {
        d.to_path_buf()
    };
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a lock listing", path.display()))
}

/// `GET /locks[/{target}]` over plain HTTP/1.0. The service serves loopback HTTP with
/// tiny_http; a client crate (and its TLS stack) for one request was not worth its build.
fn from_service(url: &str, target: Option<&str>) -> Result<Value> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--service {url}: only http:// addresses (the service's port is plain HTTP)");
    };
    let (host, base) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let path = match target {
        Some(t) => format!("/{base}locks/{}", encode(t)),
        None => format!("/{base}locks"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {host}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .context("reading the service's answer")?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the service's answer has no header end")?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    let body = &resp[split + 4..];
    if status != "200" {
        bail!(
            "{url}{path}: HTTP {status}: {}",
            String::from_utf8_lossy(body).trim()
        );
    }
    serde_json::from_slice(body).context("the service's lock listing is not JSON")
}

/// Percent-encode a path segment (tokens and ids are URL-safe already; a masked PAN has `*`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn filter(doc: &mut Value, target: Option<&str>, active: bool) {
    let Some(Value::Array(locks)) = doc.get_mut("locks") else {
        return;
    };
    locks.retain(|l| {
        let on = |k: &str| l.get(k).and_then(Value::as_str) == target;
        (target.is_none() || on("target") || on("pan_masked"))
            && (!active || l.get("state").and_then(Value::as_str) == Some("active"))
    });
}

/// One line per lock: target (masked PAN for a card given by PAN), origin, why, times, the
/// switch's answer to the lock command, the release.
fn table(doc: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header([
        "target", "kind", "state", "origin", "reason", "issued", "expires", "ack", "released",
    ]);
    let none = Vec::new();
    let locks = doc.get("locks").and_then(Value::as_array).unwrap_or(&none);
    for l in locks {
        let target = l
            .get("pan_masked")
            .and_then(Value::as_str)
            .map_or_else(|| s(l, "target"), str::to_string);
        let origin = match s(l, "origin_kind").as_str() {
            "rule" => format!("rule {}", s(l, "origin")),
            "manual" => format!("by {}", s(l, "origin")),
            other => other.to_string(),
        };
        let reason = match l.get("reason").and_then(Value::as_str) {
            Some(r) => format!("{} ({r})", s(l, "reason_code")),
            None => s(l, "reason_code"),
        };
        let ack = l
            .get("commands")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .map(|c| format!("{} {}", s(c, "action"), s(c, "ack")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let released = match l.get("released_at").and_then(Value::as_str) {
            Some(at) => format!(
                "{at} by {} ({})",
                s(l, "released_by"),
                s(l, "release_reason")
            ),
            None => String::new(),
        };
        t.add_row([
            target,
            s(l, "kind"),
            s(l, "state"),
            origin,
            reason,
            s(l, "issued_at"),
            s(l, "expires_at"),
            ack,
            released,
        ]);
    }
    format!("{t}\n{} locks as of {}\n", locks.len(), s(doc, "as_of"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_target_or_mask_and_by_state() {
        let mut doc = serde_json::json!({"as_of": "x", "locks": [
            {"target": "tok_a", "pan_masked": "622588******1234", "state": "active"},
            {"target": "tok_b", "state": "released"},
            {"target": "T1", "state": "expired"},
        ]});
        let mut d = doc.clone();
        filter(&mut d, Some("622588******1234"), false);
        assert_eq!(d["locks"].as_array().unwrap().len(), 1);
        let mut d = doc.clone();
        filter(&mut d, None, true);
        assert_eq!(d["locks"][0]["target"], "tok_a");
        filter(&mut doc, Some("T1"), true);
        assert!(doc["locks"].as_array().unwrap().is_empty());
        assert_eq!(encode("622588******1234"), "622588%2A%2A%2A%2A%2A%2A1234");
    }
}
