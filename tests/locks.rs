//! The lock lifecycle through the engine, from JSON records as the switch and the console
//! write them: a released card is locked again while the attack goes on; manual lock, release
//! and extension give deterministic commands carrying actor and reason; the switch's
//! acknowledgements are recorded, refusals and silence alerted once; bad control records are
//! rejects with a precise reason, never a stop.

mod common;

use common::*;
use switchguard::control::Input;
use switchguard::decision::{Command, Decisions};
use switchguard::decode::Decoder;
use switchguard::engine::{Engine, EngineConfig, Pipeline};

const PAN: &str = "6225880123456789";

fn wrong_pin(id: &str, ts: &str) -> String {
    format!(
        r#"{{"id":"{id}","ts":"{ts}","type":"auth","pan":"{PAN}","terminal":"T1","merchant":"M1","amount":1000,"currency":"CNY","pin":"entered","response_code":"55"}}"#
    )
}

/// Run `records` (events and control records, JSON) through one pipeline.
fn run(records: &[String]) -> (Decisions, Pipeline) {
    let d = Decoder::default();
    let mut p = Pipeline::new(Engine::new(default_pack(), EngineConfig::default()));
    let mut out = Decisions::default();
    for r in records {
        let input = d
            .decode_input(r.as_bytes())
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        p.push_input(input, &mut out);
    }
    p.flush(&mut out);
    (out, p)
}

fn locks(d: &Decisions) -> Vec<&Command> {
    d.commands
        .iter()
        .filter(|c| c.action == "lock_card")
        .collect()
}

fn attack(from: u32, to: u32) -> Vec<String> {
    (from..to)
        .map(|i| wrong_pin(&format!("w{i}"), &format!("2026-10-01T10:{:02}:00Z", i * 2)))
        .collect()
}

#[test]
fn a_released_card_is_locked_again_while_the_attack_goes_on() {
    let token = switchguard::pan::Tokenizer::default().token(PAN);
    let unlock = format!(
        r#"{{"id":"c1","ts":"2026-10-01T10:09:00Z","control":"unlock","pan":"{PAN}","reason":"cardholder called","actor":"alice"}}"#
    );
    // Without the release, the card stays locked and no second lock is sent.
    let (plain, _) = run(&attack(0, 8));
    assert_eq!(locks(&plain).len(), 1, "{:?}", plain.commands);

    let mut records = attack(0, 5);
    records.push(unlock);
    records.extend(attack(5, 8));
    let (d, p) = run(&records);
    let actions: Vec<&str> = d.commands.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        ["lock_card", "unlock_card", "lock_card"],
        "{:?}",
        d.commands
    );
    let release = &d.commands[1];
    assert_eq!(release.target, token);
    assert_eq!(release.actor.as_deref(), Some("alice"));
    assert_eq!(release.reason.as_deref(), Some("cardholder called"));
    assert_eq!(release.control_id.as_deref(), Some("c1"));
    assert!(d.commands[2].ts.as_str() > release.ts.as_str());
    // Two records on the card: the first released by alice, the second in force.
    let recs = p.engine().locks().records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].released_by.as_deref(), Some("alice"));
    assert!(recs[1].released_at.is_none());
}

#[test]
fn manual_lock_extend_unlock_with_deterministic_ids_and_acknowledgements() {
    let ctl = |id: &str, ts: &str, rest: &str| {
        format!(r#"{{"id":"{id}","ts":"2026-10-01T{ts}Z",{rest}}}"#)
    };
    let lock = ctl(
        "m1",
        "09:00:00",
        r#""control":"lock","terminal":"T9","ttl":"2h","reason":"skimmer reported","actor":"bob""#,
    );
    let run1 = run(std::slice::from_ref(&lock)).0;
    let id = run1.commands[0].command_id.clone();
    let records = vec![
        lock.clone(),
        ctl(
            "a1",
            "09:00:05",
            &format!(r#""control":"ack","command_id":"{id}","status":"applied""#),
        ),
        ctl(
            "m2",
            "10:00:00",
            r#""control":"extend","terminal":"T9","expires_at":"2026-10-02T09:00:00Z","reason":"still under investigation","actor":"bob""#,
        ),
        ctl(
            "m3",
            "11:00:00",
            r#""control":"unlock","terminal":"T9","reason":"skimmer removed","actor":"carol""#,
        ),
        // Repeats of a control record change nothing.
        lock,
        ctl(
            "m4",
            "11:30:00",
            r#""control":"extend","terminal":"T9","ttl":"1h","reason":"x","actor":"bob""#,
        ),
        ctl(
            "a2",
            "11:40:00",
            r#""control":"ack","command_id":"cmd_nope","status":"applied""#,
        ),
    ];
    let (d, p) = run(&records);
    let actions: Vec<&str> = d.commands.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(actions, ["lock_terminal", "extend", "unlock_terminal"]);
    assert_eq!(d.commands[0].command_id, id, "the same record, the same id");
    assert_eq!(
        d.commands[0].expires_at.as_deref(),
        Some("2026-10-01T11:00:00.000Z")
    );
    assert_eq!(
        d.commands[1].expires_at.as_deref(),
        Some("2026-10-02T09:00:00.000Z")
    );
    assert_eq!(d.commands[2].actor.as_deref(), Some("carol"));
    // The extension after the release and the unknown acknowledgement are refused.
    let refused: Vec<&str> = d.rejects.iter().map(|r| r.reason_code).collect();
    assert_eq!(refused, ["no_active_lock", "unknown_command"]);
    // The extension and the release were never acknowledged: one alert each; the lock was.
    let overdue: Vec<&str> = d
        .alerts
        .iter()
        .filter(|a| a.rule == "command_unacknowledged")
        .map(|a| a.features["action"].as_str().unwrap())
        .collect();
    assert_eq!(overdue, ["extend", "unlock_terminal"]);
    let rec = &p.engine().locks().records()[0];
    assert_eq!(
        rec.commands[0].ack,
        switchguard::control::AckStatus::Applied
    );
    assert_eq!(rec.released_by.as_deref(), Some("carol"));
}

#[test]
fn a_rejected_command_is_alerted_once() {
    let (first, _) = run(&attack(0, 3));
    let id = &locks(&first)[0].command_id;
    let mut records = attack(0, 3);
    records.push(format!(
        r#"{{"id":"k1","ts":"2026-10-01T10:04:10Z","control":"ack","command_id":"{id}","status":"rejected","detail":"card not on file"}}"#
    ));
    let (d, _) = run(&records);
    let rejected: Vec<_> = d
        .alerts
        .iter()
        .filter(|a| a.rule == "command_rejected")
        .collect();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].reason.contains("card not on file"),
        "{}",
        rejected[0].reason
    );
    assert!(d.alerts.iter().all(|a| a.rule != "command_unacknowledged"));
}

#[test]
fn every_bad_control_record_is_refused_with_its_reason() {
    let d = Decoder::default();
    let cases = [
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"lock","account":"A1","ttl":"1h","reason":"r","actor":"a"}"#,
            "target",
        ),
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"lock","card":"tok_x","ttl":"1h","reason":"r"}"#,
            "actor",
        ),
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"lock","card":"tok_x","ttl":"soon","reason":"r","actor":"a"}"#,
            "ttl",
        ),
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"ack","status":"applied"}"#,
            "command_id",
        ),
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"ack","command_id":"c","status":"maybe"}"#,
            "status",
        ),
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"nuke","card":"tok_x"}"#,
            "control",
        ),
        (
            r#"{"id":"x","ts":"2026-10-01T10:00:00Z","control":"lock","#,
            "",
        ),
    ];
    for (json, field) in cases {
        let e = d.decode_input(json.as_bytes()).expect_err(json);
        assert!(e.to_string().contains(field), "{json}: {e}");
    }
    // A PAN given as the target is tokenised; the record keeps only its mask.
    let ok = format!(
        r#"{{"id":"y","ts":"2026-10-01T10:00:00Z","control":"lock","pan":"{PAN}","ttl":"1h","reason":"r","actor":"a"}}"#
    );
    let Input::Control(c) = d.decode_input(ok.as_bytes()).unwrap() else {
        panic!("a control record")
    };
    let text = serde_json::to_string(&c.contract()).unwrap();
    assert!(!text.contains(PAN), "{text}");
}
