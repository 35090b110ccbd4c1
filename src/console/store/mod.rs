//! The console's database: one code path for SQLite (the embedded default, a file) and
//! PostgreSQL (`--database postgres://...`), through sqlx's `Any` driver. Every query is
//! written once, with `$N` placeholders (which sqlx's SQLite driver reads as positional);
//! only the first migration's auto-numbered keys differ between the two backends.

pub mod cases;
pub mod ingest;
pub mod users;
pub mod views;

use anyhow::{Context, Result};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use std::borrow::Cow;

/// Which database the console runs on (for the few places that must know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle shared by ingest and the web server.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// A transaction that will write. SQLite: `BEGIN IMMEDIATE`, so it takes the write lock
    /// at once (waiting for the busy timeout). A deferred transaction that reads first and
    /// writes later fails at once with "database is locked" when the ingest writer committed
    /// in between (an analyst's comment during a burst of alerts got HTTP 500).
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// The migrations of a backend, compiled into the binary.
fn migrations(backend: Backend) -> Vec<Migration> {
    let first = match backend {
        Backend::Sqlite => concat!(
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/common.sql")
        ),
        Backend::Postgres => concat!(
            include_str!("../migrations/postgres/0001_init.sql"),
            include_str!("../migrations/common.sql")
        ),
    };
    vec![Migration::new(
        1,
        Cow::Borrowed("init"),
        MigrationType::Simple,
        Cow::Borrowed(first),
        false,
    )]
}

/// A `--database` value as a sqlx URL: `postgres://`/`postgresql://` URLs as they are,
/// `sqlite:` URLs as they are, anything else a SQLite file path (created when missing).
pub fn url_of(database: &str) -> (String, Backend) {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        (database.to_string(), Backend::Postgres)
    } else if database.starts_with("sqlite:") {
        (database.to_string(), Backend::Sqlite)
    } else {
        (format!("sqlite://{database}?mode=rwc"), Backend::Sqlite)
    }
}

impl Db {
    /// Connect and bring the schema up to date.
    pub async fn open(database: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (url, backend) = url_of(database);
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few readers beside the ingest writer.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .connect(&url)
            .await
            .with_context(|| format!("opening database {}", redact_url(database)))?;
        if backend == Backend::Sqlite {
            // WAL: readers (the web pages) never wait for the ingest writer. Persistent in
            // the file, so setting it once per start is enough.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .context("setting WAL mode")?;
        }
        let migrator = Migrator {
            migrations: Cow::Owned(migrations(backend)),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        migrator
            .run(&pool)
            .await
            .context("migrating the console database")?;
        Ok(Db { pool, backend })
    }
}

/// A database URL for messages: any password replaced.
pub fn redact_url(u: &str) -> String {
    match (u.find("://"), u.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &u[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &u[..s + 3], &creds[..c], &u[at..]),
                None => u.to_string(),
            }
        }
        _ => u.to_string(),
    }
}

/// Wall-clock now, epoch ms (the console's own actions are stamped with it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Column helpers: `Any` rows by name, with a clear error.
pub(crate) fn s(r: &AnyRow, c: &str) -> String {
    r.try_get::<Option<String>, _>(c)
        .ok()
        .flatten()
        .unwrap_or_default()
}
pub(crate) fn os(r: &AnyRow, c: &str) -> Option<String> {
    r.try_get::<Option<String>, _>(c).ok().flatten()
}
pub(crate) fn i(r: &AnyRow, c: &str) -> i64 {
    r.try_get::<Option<i64>, _>(c).ok().flatten().unwrap_or(0)
}
pub(crate) fn oi(r: &AnyRow, c: &str) -> Option<i64> {
    r.try_get::<Option<i64>, _>(c).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_values_map_to_backends_and_passwords_never_show() {
        assert_eq!(url_of("console.db").1, Backend::Sqlite);
        assert_eq!(url_of("console.db").0, "sqlite://console.db?mode=rwc");
        assert_eq!(url_of("postgres://u:p@h/db").1, Backend::Postgres);
        assert_eq!(
            redact_url("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
    }
}
