//! The console's database layer against SQLite and, when `SWITCHGUARD_TEST_POSTGRES` names a
//! server (scripts/test starts one), against PostgreSQL too: idempotent ingest with offsets,
//! one open case per entity, append-only history, dispositions into precision and labels,
//! the lock view from commands and acks, users and sessions. Each test runs on a fresh
//! database of each backend. Without the variable the PostgreSQL half fails unless
//! `SWITCHGUARD_SKIP_POSTGRES=1` (so CI cannot silently skip it).

use serde_json::json;
use switchguard::console::contract::{AckStatus, Disposition};
use switchguard::console::store::cases::{self, Change};
use switchguard::console::store::ingest::{self, Kind, Record};
use switchguard::console::store::users::{self, Role};
use switchguard::console::store::{views, Db};

/// Fresh databases: a SQLite file, and a new PostgreSQL database when configured.
async fn databases(dir: &std::path::Path) -> Vec<Db> {
    let mut out = vec![Db::open(dir.join("c.db").to_str().unwrap()).await.unwrap()];
    match std::env::var("SWITCHGUARD_TEST_POSTGRES") {
        Ok(url) => {
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&url).await.unwrap();
            let token = users::random_token().to_lowercase().replace(['-', '_'], "");
            let name = format!("sg_test_{}", &token[..16]);
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            let base = url.rsplit_once('/').unwrap().0;
            out.push(Db::open(&format!("{base}/{name}")).await.unwrap());
        }
        Err(_) => assert!(
            std::env::var("SWITCHGUARD_SKIP_POSTGRES").is_ok(),
            "SWITCHGUARD_TEST_POSTGRES is not set (scripts/test starts PostgreSQL); \
             set SWITCHGUARD_SKIP_POSTGRES=1 to run on SQLite alone"
        ),
    }
    out
}

fn alert(id: &str, ts: &str, rule: &str, sev: &str, entity: &str, entity_id: &str) -> Vec<u8> {
    json!({"alert_id": id, "ts": ts, "rule": rule, "severity": sev, "mode": "enforce",
           "entity": entity, "entity_id": entity_id, "card": entity_id,
           "pan_masked": "622588******0018", "terminal": "T1", "merchant": "M1",
           "event_ids": [format!("{id}-e1"), format!("{id}-e2")], "reason": "3 wrong PINs",
           "features": {"count": 3, "explain": "unusual"}})
    .to_string()
    .into_bytes()
}

fn parse(kind: Kind, v: Vec<u8>) -> Record {
    ingest::parse(kind, &v, "test")
}

async fn count(db: &Db, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

#[tokio::test]
async fn ingest_is_idempotent_and_groups_alerts_into_one_open_case_per_entity() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let batch = || {
            vec![
                parse(Kind::Alert, alert("al_1", "2026-10-01T01:00:00.000Z", "pin", "high", "card", "tok_a")),
                parse(Kind::Alert, alert("al_2", "2026-10-01T02:00:00.000Z", "split", "critical", "card", "tok_a")),
                parse(Kind::Alert, alert("al_3", "2026-10-01T03:00:00.000Z", "pin", "low", "card", "tok_b")),
                parse(Kind::Evidence, json!({"alert_id": "al_1", "events": [{"id": "al_1-e1", "pan": "6225880000000018"}]}).to_string().into_bytes()),
                parse(Kind::Alert, b"{not json".to_vec()),
            ]
        };
        let a = ingest::apply(&db, batch(), &[("risk.alerts".into(), 0, 5)])
            .await
            .unwrap();
        assert_eq!(a.new_alerts.len(), 3);
        assert_eq!(a.rejects.len(), 1);
        let again = ingest::apply(&db, batch(), &[("risk.alerts".into(), 0, 5)])
            .await
            .unwrap();
        assert_eq!(
            (again.new_alerts.len(), again.repeats),
            (0, 3),
            "a batch read twice adds nothing"
        );
        assert_eq!(count(&db, "alerts").await, 3);
        assert_eq!(count(&db, "cases").await, 2);
        assert_eq!(count(&db, "evidence").await, 1);
        assert_eq!(
            ingest::offsets(&db, "risk.alerts").await.unwrap(),
            vec![(0, 5)]
        );
        let history_before = count(&db, "case_history").await;
        assert_eq!(
            history_before,
            2 + 3,
            "two openings and three alerts, not doubled"
        );

        let page = views::inbox(&db, &Default::default()).await.unwrap();
        assert_eq!(page.total, 2);
        let a_case = page
            .cases
            .iter()
            .find(|c| c.entity_id == "tok_a")
            .unwrap()
            .clone();
        assert_eq!(
            (
                a_case.alert_count,
                a_case.max_severity,
                a_case.last_rule.as_str()
            ),
            (2, 4, "split")
        );
        let by_rule = views::InboxQuery {
            rule: "split".into(),
            ..Default::default()
        };
        assert_eq!(views::inbox(&db, &by_rule).await.unwrap().total, 1);

        // Closing frees the entity: its next alert opens a new case.
        cases::change(&db, a_case.id, "alice", &Change::Status("closed".into()))
            .await
            .unwrap();
        ingest::apply(
            &db,
            vec![parse(
                Kind::Alert,
                alert(
                    "al_4",
                    "2026-10-01T04:00:00.000Z",
                    "pin",
                    "high",
                    "card",
                    "tok_a",
                ),
            )],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(count(&db, "cases").await, 3);
        let reopen = cases::change(&db, a_case.id, "alice", &Change::Status("open".into())).await;
        assert!(reopen.unwrap_err().to_string().contains("already open"));

        // The evidence kept no clear PAN; the reject kept its reason.
        let ev = views::case_evidence(&db, a_case.id).await.unwrap();
        let text = serde_json::to_string(&ev["al_1"]).unwrap();
        assert!(
            !text.contains("6225880000000018") && text.contains("622588******0018"),
            "{text}"
        );
        use sqlx::Row;
        let reason: String = sqlx::query("SELECT reason FROM ingest_rejects")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get("reason");
        assert!(reason.starts_with("alert:"), "{reason}");
    }
}

#[tokio::test]
async fn changes_are_audited_and_dispositions_feed_precision_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let recs = vec![
            parse(
                Kind::Alert,
                alert(
                    "al_1",
                    "2026-10-01T01:00:00.000Z",
                    "pin",
                    "high",
                    "card",
                    "tok_a",
                ),
            ),
            parse(
                Kind::Alert,
                alert(
                    "al_2",
                    "2026-10-01T02:00:00.000Z",
                    "pin",
                    "high",
                    "card",
                    "tok_b",
                ),
            ),
            parse(
                Kind::Alert,
                alert(
                    "al_3",
                    "2026-10-01T02:00:00.000Z",
                    "split",
                    "high",
                    "card",
                    "tok_b",
                ),
            ),
        ];
        let applied = ingest::apply(&db, recs, &[]).await.unwrap();
        let (ca, cb) = (applied.new_alerts[0].case_id, applied.new_alerts[1].case_id);
        cases::change(&db, ca, "alice", &Change::Assign(Some("bob".into())))
            .await
            .unwrap();
        cases::change(
            &db,
            ca,
            "alice",
            &Change::Comment("<b>called</b> the cardholder".into()),
        )
        .await
        .unwrap();
        cases::change(
            &db,
            ca,
            "alice",
            &Change::Dispose(Disposition::ConfirmedFraud),
        )
        .await
        .unwrap();
        cases::change(&db, cb, "bob", &Change::Dispose(Disposition::FalsePositive))
            .await
            .unwrap();
        assert!(
            cases::change(&db, ca, "alice", &Change::Comment("  ".into()))
                .await
                .is_err()
        );

        let h = cases::history_of(&db, ca).await.unwrap();
        let acts: Vec<(&str, &str)> = h
            .iter()
            .map(|x| (x.actor.as_str(), x.action.as_str()))
            .collect();
        assert_eq!(
            acts,
            vec![
                ("switchguard", "opened"),
                ("switchguard", "alert"),
                ("alice", "assign"),
                ("alice", "comment"),
                ("alice", "disposition")
            ]
        );
        assert_eq!(
            h[3].detail, "<b>called</b> the cardholder",
            "stored as typed, escaped when shown"
        );
        assert_eq!(count(&db, "audit").await, 4);

        let p = views::precision(&db).await.unwrap();
        let pin = p.iter().find(|r| r.rule == "pin").unwrap();
        assert_eq!((pin.alerts, pin.confirmed, pin.false_positive), (2, 1, 1));
        assert_eq!(pin.precision(), Some(0.5));
        let split = p.iter().find(|r| r.rule == "split").unwrap();
        assert_eq!(split.precision(), Some(0.0));

        let labels = views::labels(&db).await.unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels[0].alert_id, "al_1");
        assert_eq!(labels[0].disposition, Disposition::ConfirmedFraud);
        assert_eq!(labels[0].actor, "alice");
        assert_eq!(labels[0].event_ids, vec!["al_1-e1", "al_1-e2"]);
        assert!(labels
            .iter()
            .filter(|l| l.entity_id == "tok_b")
            .all(|l| l.disposition == Disposition::FalsePositive && l.actor == "bob"));
    }
}

#[tokio::test]
async fn lock_view_follows_commands_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let cmd = |id: &str, ts: &str, action: &str, extra: serde_json::Value| {
            let mut v = json!({"command_id": id, "ts": ts, "action": action, "target": "tok_a",
                               "target_kind": "card", "pan_masked": "622588******0018"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(Kind::Command, v.to_string().into_bytes())
        };
        let recs = vec![
            parse(Kind::Alert, alert("al_1", "2026-10-01T01:00:00.000Z", "pin", "high", "card", "tok_a")),
            cmd("cmd_1", "2026-10-01T01:00:00.000Z", "lock_card", json!({"expires_at": "2026-10-02T01:00:00.000Z", "reason_code": "PIN_BRUTE_FORCE", "rule": "pin", "alert_id": "al_1"})),
            parse(Kind::Control, json!({"id": "ack-1", "ts": "2026-10-01T01:00:01.000Z", "control": "ack", "command_id": "cmd_1", "status": "applied"}).to_string().into_bytes()),
            cmd("cmd_2", "2026-10-01T05:00:00.000Z", "extend", json!({"expires_at": "2026-10-03T00:00:00.000Z", "reason_code": "MANUAL_EXTEND", "actor": "bob", "control_id": "console-1", "reason": "r"})),
            cmd("cmd_3", "2026-10-01T06:00:00.000Z", "unlock_card", json!({"reason_code": "MANUAL_UNLOCK", "actor": "alice", "control_id": "console-2", "reason": "verified"})),
            parse(Kind::Control, json!({"id": "ack-3", "ts": 1790834400000i64, "control": "ack", "command_id": "cmd_3", "status": "rejected", "detail": "no such card"}).to_string().into_bytes()),
        ];
        ingest::apply(&db, recs, &[]).await.unwrap();
        let c = cases::get(&db, 1).await.unwrap().unwrap();
        let (cmds, locks) = views::case_locks(&db, &c).await.unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[2].ack, AckStatus::Rejected);
        assert_eq!(cmds[2].ack_detail.as_deref(), Some("no such card"));
        assert_eq!(locks.len(), 1);
        let l = &locks[0];
        assert_eq!(
            (l.origin.as_str(), l.ack, l.released_by.as_deref()),
            ("pin", AckStatus::Applied, Some("alice"))
        );
        assert_eq!(
            l.expires_at,
            switchguard::console::contract::parse_ts("2026-10-03T00:00:00Z")
        );
        assert_eq!(
            views::unacknowledged_count(&db).await.unwrap(),
            1,
            "cmd_2 has no ack"
        );
        let now = views::stream_time(&db).await.unwrap();
        assert!(
            views::active_locks(&db, now).await.unwrap().is_empty(),
            "released"
        );
    }
}

#[tokio::test]
async fn passwords_are_hashed_sessions_are_hashed_and_roles_kept() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let pw = "Sup3r-secret-pw";
        users::add(&db, "alice", Role::Analyst, pw, "cli")
            .await
            .unwrap();
        assert!(users::add(&db, "bob", Role::Viewer, "short", "cli")
            .await
            .is_err());
        assert!(users::login(&db, "alice", "wrong-password", "127.0.0.1")
            .await
            .unwrap()
            .is_none());
        assert!(users::login(&db, "nobody", pw, "127.0.0.1")
            .await
            .unwrap()
            .is_none());
        let token = users::login(&db, "alice", pw, "127.0.0.1")
            .await
            .unwrap()
            .unwrap();
        let u = users::session(&db, &token).await.unwrap().unwrap();
        assert_eq!((u.name.as_str(), u.role), ("alice", Role::Analyst));
        assert!(users::session(&db, "forged").await.unwrap().is_none());
        // Nothing stored holds the password or the session token in clear.
        use sqlx::Row;
        for (table, cols) in [
            ("users", "name || role || pw_hash"),
            ("sessions", "token_hash || user_name || csrf"),
            ("audit", "actor || action || target || detail"),
        ] {
            for r in sqlx::query(&format!("SELECT {cols} AS t FROM {table}"))
                .fetch_all(&db.pool)
                .await
                .unwrap()
            {
                let t: String = r.get("t");
                assert!(!t.contains(pw) && !t.contains(&token), "{table}: {t}");
            }
        }
        users::logout(&db, &token, "alice").await.unwrap();
        assert!(users::session(&db, &token).await.unwrap().is_none());
        let actions: Vec<String> = views::audit_log(&db, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            actions,
            vec![
                "logout",
                "login",
                "login_failed",
                "login_failed",
                "user_add"
            ]
        );
    }
}
