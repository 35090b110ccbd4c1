//! Users, roles, passwords and sessions. Passwords are hashed with Argon2id (the `argon2`
//! crate, RustCrypto; OWASP's first choice) with a random salt each, and never stored or
//! logged in clear. A session is a random 256-bit token in an HttpOnly cookie; the database
//! keeps only its SHA-256, so a copy of the database opens no session. Each session has its
//! own CSRF token.

use super::{i, now_ms, s, Db};
use anyhow::{anyhow, bail, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a user may do: viewers read, analysts also act on cases and locks, admins also read
/// the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Analyst,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "analyst" => Some(Role::Analyst),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

/// A logged-in user, as a request sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUser {
    pub name: String,
    pub role: Role,
    pub csrf: String,
}

/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// A random token: 32 bytes from the OS, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("hashing: {e}"))?
        .to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid user name: 1-64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Add a user, or replace the role and password of an existing one (audited, by `actor`).
pub async fn add(db: &Db, name: &str, role: Role, password: &str, actor: &str) -> Result<()> {
    if !valid_name(name) {
        bail!("user name must be 1-64 of letters, digits, '.', '_', '-', '@'");
    }
    if password.chars().count() < 8 {
        bail!("password must be at least 8 characters");
    }
    let hash = hash_password(password)?;
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (name, role, pw_hash, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, pw_hash = excluded.pw_hash",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Sessions of a user whose password changes end.
    sqlx::query("DELETE FROM sessions WHERE user_name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    super::cases::audit(&mut tx, now, actor, "user_add", name, role.as_str()).await?;
    tx.commit().await?;
    Ok(())
}

/// The users and their roles.
pub async fn list(db: &Db) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT name, role FROM users ORDER BY name")
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(|r| (s(r, "name"), s(r, "role"))).collect())
}

/// A well-formed Argon2id hash of nothing anyone knows: an unknown user name is checked
/// against it, so it costs the same hashing time as a known one (no user enumeration).
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$W7bUQ6wM7C5XyHLqKyOKdjUa9yY3Ckz8ccQqpzuV7ZA";

/// Check a password; on success open a session and return its token. Both outcomes are
/// audited (without the password).
pub async fn login(db: &Db, name: &str, password: &str, from: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT pw_hash FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    let hash = row.map(|r| s(&r, "pw_hash"));
    let ok = verify(password, hash.as_deref().unwrap_or(DUMMY)) && hash.is_some();
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let shown = if valid_name(name) {
        name
    } else {
        "(invalid name)"
    };
    let token = if ok {
        let token = random_token();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(sha256_hex(&token))
        .bind(name)
        .bind(random_token())
        .bind(now + SESSION_MS)
        .execute(&mut *tx)
        .await?;
        super::cases::audit(&mut tx, now, name, "login", name, from).await?;
        Some(token)
    } else {
        super::cases::audit(&mut tx, now, shown, "login_failed", shown, from).await?;
        None
    };
    tx.commit().await?;
    Ok(token)
}

/// The user of a session token, if the session is live.
pub async fn session(db: &Db, token: &str) -> Result<Option<SessionUser>> {
    let row = sqlx::query(
        "SELECT s.user_name AS name, u.role AS role, s.csrf AS csrf, s.expires_ms AS expires_ms \
         FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.token_hash = $1",
    )
    .bind(sha256_hex(token))
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.and_then(|r| {
        (i(&r, "expires_ms") > now_ms()).then(|| SessionUser {
            name: s(&r, "name"),
            role: Role::parse(&s(&r, "role")).unwrap_or(Role::Viewer),
            csrf: s(&r, "csrf"),
        })
    }))
}

/// End a session (audited).
pub async fn logout(db: &Db, token: &str, name: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(sha256_hex(token))
        .execute(&mut *tx)
        .await?;
    super::cases::audit(&mut tx, now_ms(), name, "logout", name, "").await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("correct horse"));
        assert!(verify("correct horse", &a));
        assert!(!verify("wrong horse", &a));
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        let h = PasswordHash::new(DUMMY).expect("parses");
        assert_eq!(h.algorithm.as_str(), "argon2id");
        assert!(!verify("", DUMMY));
    }

    #[test]
    fn names_are_restricted() {
        assert!(valid_name("alice.b-2@risk"));
        assert!(!valid_name("<script>"));
        assert!(!valid_name(""));
    }
}
