use super::*;

const H: i64 = 3_600_000;

/// The instant `ms` after the epoch (the tests write times as numbers).
fn t(ms: i64) -> EventTime {
    EventTime::from_ms(ms)
}

fn cmd(id: &str, action: &str, at: i64) -> CommandState {
    CommandState {
        command_id: id.into(),
        action: action.into(),
        issued_at: t(at),
        ack: AckStatus::None,
        ack_detail: None,
        acked_at: None,
        overdue: false,
    }
}

fn lock(target: &str, origin: Origin, at: i64, ttl: i64, id: &str) -> LockRecord {
    LockRecord {
        target: target.into(),
        kind: TargetKind::Card,
        pan_masked: None,
        origin,
        alert_id: None,
        reason_code: "X".into(),
        reason: None,
        issued_at: t(at),
        expires_at: t(at + ttl),
        released_at: None,
        released_by: None,
        release_reason: None,
        commands: vec![cmd(id, "lock_card", at)],
    }
}

fn release(b: &mut LockBook, target: &str, at: i64, id: &str) -> Option<LockRecord> {
    b.update_active(
        TargetKind::Card,
        target,
        t(at),
        cmd(id, "unlock_card", at),
        DEFAULT_ACK_TIMEOUT,
        |r| {
            r.released_at = Some(t(at));
            r.released_by = Some("alice".into());
        },
    )
}

#[test]
fn a_released_lock_no_longer_holds_and_a_new_one_can_be_placed() {
    let mut b = LockBook::default();
    b.place(
        lock("C1", Origin::Rule("r".into()), 0, 24 * H, "c1"),
        DEFAULT_ACK_TIMEOUT,
    );
    assert!(b.is_locked(TargetKind::Card, "C1", t(H)));
    assert!(
        !b.is_locked(TargetKind::Terminal, "C1", t(H)),
        "kinds are apart"
    );
    let r = release(&mut b, "C1", 2 * H, "c2").expect("an active lock");
    assert_eq!(r.state(t(2 * H)), "released");
    assert!(!b.is_locked(TargetKind::Card, "C1", t(3 * H)));
    assert!(
        release(&mut b, "C1", 3 * H, "c3").is_none(),
        "nothing left to release"
    );
    b.place(
        lock("C1", Origin::Rule("r".into()), 4 * H, 24 * H, "c4"),
        DEFAULT_ACK_TIMEOUT,
    );
    assert!(b.is_locked(TargetKind::Card, "C1", t(5 * H)));
    assert_eq!(b.records().len(), 2, "the history stays");
    assert!(
        !b.is_locked(TargetKind::Card, "C1", t(28 * H + 1)),
        "expired"
    );
    assert_eq!(
        b.latest(TargetKind::Card, "C1").unwrap().state(t(30 * H)),
        "expired"
    );
}

#[test]
fn a_new_lock_supersedes_the_active_one() {
    let mut b = LockBook::default();
    b.place(
        lock("C1", Origin::Rule("r".into()), 0, 24 * H, "c1"),
        Span::ms(1),
    );
    b.place(
        lock("C1", Origin::Manual("bob".into()), H, 48 * H, "c2"),
        Span::ms(1),
    );
    let recs = b.records();
    assert_eq!(recs[0].released_at, Some(t(H)));
    assert_eq!(recs[0].released_by.as_deref(), Some("bob"));
    assert!(recs[1].active(t(30 * H)));
}

#[test]
fn acknowledgements_are_recorded_refusals_reported_and_unknown_ids_told_apart() {
    let mut b = LockBook::default();
    b.place(
        lock("C1", Origin::Rule("r".into()), 0, H, "c1"),
        Span::ms(1000),
    );
    b.place(
        lock("C2", Origin::Rule("r".into()), 0, H, "c2"),
        Span::ms(1000),
    );
    match b.ack("c1", AckStatus::Applied, None, t(10)) {
        AckOutcome::Recorded { report, record } => {
            assert!(!report);
            assert_eq!(record.commands[0].ack, AckStatus::Applied);
            assert_eq!(record.commands[0].acked_at, Some(t(10)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.ack(
            "c2",
            AckStatus::Rejected,
            Some("card unknown".into()),
            t(20)
        ),
        AckOutcome::Recorded { report: true, .. }
    ));
    assert_eq!(
        b.ack("nope", AckStatus::Applied, None, t(30)),
        AckOutcome::UnknownCommand
    );
    assert_eq!(b.unacknowledged(), 0);
}

#[test]
fn an_unacknowledged_command_is_reported_once_when_its_deadline_passes() {
    let mut b = LockBook::default();
    b.place(
        lock("C1", Origin::Rule("r".into()), 0, H, "c1"),
        Span::ms(30_000),
    );
    b.place(
        lock("C2", Origin::Rule("r".into()), 5_000, H, "c2"),
        Span::ms(30_000),
    );
    b.ack("c2", AckStatus::Applied, None, t(6_000));
    assert!(b.overdue(t(29_999)).is_empty());
    let due = b.overdue(t(40_000));
    assert_eq!(due.len(), 1, "c2 was acknowledged in time");
    assert_eq!(due[0].0.command_id, "c1");
    assert!(b.overdue(t(100_000)).is_empty(), "once");
    assert!(b.latest(TargetKind::Card, "C1").unwrap().commands[0].overdue);
    // A late acknowledgement is still recorded.
    assert!(matches!(
        b.ack("c1", AckStatus::Applied, None, t(200_000)),
        AckOutcome::Recorded { report: false, .. }
    ));
}

#[test]
fn records_are_kept_for_the_retention_after_they_end_and_no_longer() {
    let mut b = LockBook::default();
    b.place(
        lock("C1", Origin::Rule("r".into()), 0, H, "c1"),
        Span::ms(1),
    );
    b.place(
        lock("C2", Origin::Rule("r".into()), 0, 100 * H, "c2"),
        Span::ms(1),
    );
    release(&mut b, "C2", 2 * H, "c3");
    b.evict(t(H + DEFAULT_RETENTION.as_ms() - 1), DEFAULT_RETENTION);
    assert_eq!(b.len(), 2);
    b.evict(t(H + DEFAULT_RETENTION.as_ms()), DEFAULT_RETENTION);
    assert_eq!(b.len(), 1, "C1 ended at 1 h");
    assert!(b.latest(TargetKind::Card, "C1").is_none());
    b.evict(t(2 * H + DEFAULT_RETENTION.as_ms()), DEFAULT_RETENTION);
    assert!(b.is_empty(), "C2 ended at its release");
    assert_eq!(
        b.ack("c3", AckStatus::Applied, None, t(0)),
        AckOutcome::UnknownCommand
    );
}

#[test]
fn the_book_survives_a_snapshot_byte_for_byte() {
    let mut b = LockBook::default();
    b.place(
        lock("C1", Origin::Manual("alice".into()), 0, H, "c1"),
        Span::ms(30_000),
    );
    release(&mut b, "C1", 10, "c2");
    b.ack("c1", AckStatus::NotFound, Some("x".into()), t(5));
    let json = serde_json::to_string(&b).unwrap();
    let back: LockBook = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    assert_eq!(back.records(), b.records());
    let one = serde_json::to_value(b.records()[0]).unwrap();
    assert_eq!(one["origin_kind"], "manual");
    assert_eq!(one["origin"], "alice");
}
