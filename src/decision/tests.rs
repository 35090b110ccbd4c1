use super::*;
use crate::control::{AckStatus, Action, Control, Target, Until};
use crate::time::{EventTime, Span};

const H: i64 = 3_600_000;

/// The instant `ms` after the epoch (the tests write times as numbers).
fn t(ms: i64) -> EventTime {
    EventTime::from_ms(ms)
}

/// [`apply_control`] at `now`, with an acknowledgement timeout of `ack` ms.
fn apply(
    c: &Control,
    book: &mut LockBook,
    now: i64,
    ack: i64,
    out: &mut Decisions,
) -> Result<bool, ControlReject> {
    apply_control(c, book, t(now), Span::ms(ack), out)
}

/// [`overdue_alerts`] at `now`, with an acknowledgement timeout of `ack` ms.
fn overdue(book: &mut LockBook, now: i64, ack: i64, out: &mut Decisions) {
    overdue_alerts(book, t(now), Span::ms(ack), out)
}

fn target(id: &str) -> Target {
    Target {
        kind: TargetKind::Card,
        id: id.into(),
        pan_masked: Some("622588******6789".into()),
    }
}

fn control(id: &str, ts: i64, action: Action) -> Control {
    Control {
        id: id.into(),
        ts: t(ts),
        action,
    }
}

fn lock(id: &str, ts: i64) -> Control {
    control(
        id,
        ts,
        Action::Lock {
            target: target("tok_a"),
            ttl: Span::ms(2 * H),
            reason: "fraud confirmed".into(),
            actor: "alice".into(),
        },
    )
}

#[test]
fn the_same_control_record_gives_the_same_command() {
    let (mut a, mut b) = (LockBook::default(), LockBook::default());
    let (mut da, mut db) = (Decisions::default(), Decisions::default());
    apply(&lock("m1", 0), &mut a, 0, 0, &mut da).unwrap();
    apply(&lock("m1", 0), &mut b, 5, 0, &mut db).unwrap();
    // A repeat, even days later (past the event-id dedup window), sends nothing.
    let again = apply(&lock("m1", 0), &mut a, 48 * H, 0, &mut da);
    assert_eq!(again, Ok(false));
    assert_eq!(da.commands.len(), 1);
    assert_eq!(da.commands[0].command_id, db.commands[0].command_id);
    apply(&lock("m2", 0), &mut b, 0, 0, &mut db).unwrap();
    assert_ne!(db.commands[0].command_id, db.commands[1].command_id);
    let c = &da.commands[0];
    assert_eq!(
        (c.action.as_str(), c.reason_code.as_str()),
        ("lock_card", "MANUAL_LOCK")
    );
    assert_eq!(c.pan_masked.as_deref(), Some("622588******6789"));
    assert_eq!(c.expires_at.as_deref(), Some("1970-01-01T02:00:00.000Z"));
    assert!(a.is_locked(TargetKind::Card, "tok_a", t(H)));
}

#[test]
fn an_extension_moves_the_end_and_needs_a_lock_in_force() {
    let mut book = LockBook::default();
    let mut d = Decisions::default();
    apply(&lock("m1", 0), &mut book, 0, 0, &mut d).unwrap();
    let extend = |id: &str, ts: i64, until: Until| {
        control(
            id,
            ts,
            Action::Extend {
                target: target("tok_a"),
                until,
                reason: "r".into(),
                actor: "bob".into(),
            },
        )
    };
    apply(
        &extend("e1", H, Until::Ttl(Span::ms(5 * H))),
        &mut book,
        H,
        0,
        &mut d,
    )
    .unwrap();
    assert!(book.is_locked(TargetKind::Card, "tok_a", t(5 * H)));
    assert!(!book.is_locked(TargetKind::Card, "tok_a", t(6 * H)));
    let late = apply(
        &extend("e2", 7 * H, Until::At(t(9 * H))),
        &mut book,
        7 * H,
        0,
        &mut d,
    );
    assert_eq!(late.unwrap_err().reason_code, "no_active_lock");
    assert_eq!(d.commands.len(), 2, "a refused extension sends nothing");
}

#[test]
fn silence_is_reported_once_and_an_answer_in_time_is_not() {
    let mut book = LockBook::default();
    let mut d = Decisions::default();
    apply(&lock("m1", 0), &mut book, 0, 30_000, &mut d).unwrap();
    apply(&lock("m2", 1_000), &mut book, 1_000, 30_000, &mut d).unwrap();
    let first = d.commands[0].command_id.clone();
    let ack = control(
        "k1",
        20_000,
        Action::Ack {
            command_id: first.as_str().into(),
            status: AckStatus::Applied,
            detail: None,
        },
    );
    apply(&ack, &mut book, 20_000, 30_000, &mut d).unwrap();
    overdue(&mut book, 30_999, 30_000, &mut d);
    assert!(d.alerts.is_empty(), "not due yet");
    overdue(&mut book, 31_000, 30_000, &mut d);
    overdue(&mut book, 90_000, 30_000, &mut d);
    assert_eq!(d.alerts.len(), 1, "{:?}", d.alerts);
    assert_eq!(d.alerts[0].rule, ACK_RULE);
    assert_eq!(
        d.alerts[0].features["command_id"],
        d.commands[1].command_id.as_str()
    );
    assert_eq!(
        d.alerts[0].ts, "1970-01-01T00:00:31.000Z",
        "at the deadline, whenever seen"
    );
}
