//! `switchguard console`: the risk team's web application. It ingests alerts, commands,
//! control records and evidence from Kafka (or a replay output directory) into its own
//! database (SQLite file or PostgreSQL), groups alerts into cases, and lets analysts work
//! them: inbox, case page, overview, per-rule precision, lock/unlock/extend through the
//! control topic, dispositions exported as training labels. It talks to the core only through
//! topics and the contracts in [`contract`]. It runs its own tokio runtime; the core has none.

pub mod bench;
pub mod contract;
pub mod kafka;
pub mod load;
pub mod locks;
pub mod metrics;
pub mod store;
pub mod web;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use store::users::Role;
use store::Db;

/// `switchguard console ...`
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    pub cmd: ConsoleCmd,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCmd {
    /// Serve the console (and ingest from Kafka when --brokers is given).
    Serve(ServeArgs),
    /// Load a replay output directory into the database (idempotent).
    Load {
        dir: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Training labels from dispositions.
    Labels {
        #[command(subcommand)]
        cmd: LabelsCmd,
    },
    /// Benchmark: ingest rate and inbox page time on synthetic alerts (not a test).
    Bench(bench::BenchArgs),
}

/// The database option shared by every console command.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// SQLite file path, or a postgres:// URL.
    #[arg(
        long,
        default_value = "console.db",
        env = "SWITCHGUARD_CONSOLE_DATABASE"
    )]
    pub database: String,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user (or set an existing user's role and password). The password is read from
    /// the first line of standard input, or SWITCHGUARD_CONSOLE_PASSWORD; never a flag.
    Add {
        name: String,
        /// viewer, analyst or admin.
        #[arg(long, default_value = "analyst")]
        role: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// List users and roles.
    List {
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabelsCmd {
    /// Write the labels file (JSONL; `switchguard train --labels FILE`).
    Export {
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
}

/// `console serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Address of the web server; loopback unless you say otherwise.
    #[arg(
        long,
        default_value = "127.0.0.1:8088",
        env = "SWITCHGUARD_CONSOLE_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Address of /metrics (Prometheus), apart from the login-only web port.
    #[arg(
        long,
        default_value = "127.0.0.1:9465",
        env = "SWITCHGUARD_CONSOLE_METRICS_ADDR"
    )]
    pub metrics_addr: SocketAddr,
    /// Kafka brokers; without them the console works offline (replay directories only) and
    /// cannot lock or unlock.
    #[arg(long, env = "SWITCHGUARD_BROKERS")]
    pub brokers: Option<String>,
    /// librdkafka properties passed through, e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_parser = parse_kv)]
    pub props: Vec<(String, String)>,
    #[arg(long, default_value = "risk.alerts")]
    pub alerts_topic: String,
    #[arg(long, default_value = "switch.commands")]
    pub commands_topic: String,
    #[arg(long, default_value = "switch.control")]
    pub control_topic: String,
    #[arg(long, default_value = "risk.evidence")]
    pub evidence_topic: String,
    /// Partitions of topics the console creates when missing.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Replay output directories to load at start.
    #[arg(long)]
    pub load: Vec<PathBuf>,
    /// Mark the session cookie Secure (when served behind TLS).
    #[arg(long)]
    pub secure_cookies: bool,
}

/// A `-X` value without `=`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected key=value, got {0:?}")]
struct NotKeyValue(String);

fn parse_kv(s: &str) -> Result<(String, String), NotKeyValue> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| NotKeyValue(s.to_string()))
}

/// Entry point of `switchguard console`.
pub fn command(a: ConsoleArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the console's runtime")?;
    rt.block_on(async move {
        match a.cmd {
            ConsoleCmd::Serve(s) => serve(s, shutdown()).await,
            ConsoleCmd::Load { dir, db } => {
                let db = Db::open(&db.database).await?;
                let l = load::load_dir(&db, &dir, &|_| {}).await?;
                println!(
                    "loaded {}: {} new alerts ({} already there), {} commands, {} control records, {} evidence records, {} rejects",
                    dir.display(), l.alerts, l.repeats, l.commands, l.controls, l.evidence, l.rejects
                );
                Ok(ExitCode::SUCCESS)
            }
            ConsoleCmd::User { cmd } => user(cmd).await,
            ConsoleCmd::Labels { cmd: LabelsCmd::Export { out, db } } => {
                let db = Db::open(&db.database).await?;
                let labels = store::views::labels(&db).await?;
                let mut text = String::new();
                for l in &labels {
                    text.push_str(&serde_json::to_string(l)?);
                    text.push('\n');
                }
                match out {
                    Some(p) => std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?,
                    None => print!("{text}"),
                }
                tracing::info!("{} labels", labels.len());
                Ok(ExitCode::SUCCESS)
            }
            ConsoleCmd::Bench(b) => bench::run(b).await,
        }
    })
}

async fn user(cmd: UserCmd) -> Result<ExitCode> {
    match cmd {
        UserCmd::Add { name, role, db } => {
            let role = Role::parse(&role).context("--role must be viewer, analyst or admin")?;
            let password = match std::env::var("SWITCHGUARD_CONSOLE_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let db = Db::open(&db.database).await?;
            store::users::add(&db, &name, role, &password, "cli").await?;
            println!("user {name} ({}) saved", role.as_str());
        }
        UserCmd::List { db } => {
            let db = Db::open(&db.database).await?;
            for (n, r) in store::users::list(&db).await? {
                println!("{n}\t{r}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A console run beside another command (the demo): serves on its own runtime and thread
/// until [`Background::stop`].
pub struct Background {
    stop: Arc<tokio::sync::Notify>,
    thread: std::thread::JoinHandle<Result<ExitCode>>,
}

impl Background {
    /// Start serving `a`, with `user` (name, password) added as an analyst if missing.
    pub fn spawn(a: ServeArgs, user: Option<(String, String)>) -> Result<Self> {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .context("starting the console's runtime")?;
                rt.block_on(async move {
                    if let Some((name, pw)) = user {
                        let db = Db::open(&a.db.database).await?;
                        let known = store::users::list(&db)
                            .await?
                            .iter()
                            .any(|(n, _)| *n == name);
                        if !known {
                            store::users::add(&db, &name, store::users::Role::Analyst, &pw, "demo")
                                .await?;
                        }
                    }
                    serve(a, async move { stop2.notified().await }).await
                })
            })?;
        Ok(Self { stop, thread })
    }

    pub fn stop(self) -> Result<()> {
        self.stop.notify_one();
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the console thread panicked"))?
            .map(|_| ())
    }
}

async fn serve(
    a: ServeArgs,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ExitCode> {
    let db = Db::open(&a.db.database).await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let (live, _) = tokio::sync::broadcast::channel::<String>(1024);
    let publish = publisher(live.clone(), metrics.clone());
    for dir in &a.load {
        let l = load::load_dir(&db, dir, &publish).await?;
        tracing::info!("console: loaded {}: {} new alerts", dir.display(), l.alerts);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (control, ingest) = match &a.brokers {
        Some(brokers) => {
            let (control, ingest) = start_kafka(&a, brokers, &db, &stop, publish).await?;
            (Some(control), Some(ingest))
        }
        None => (None, None),
    };
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let state = Arc::new(web::AppState {
        closing,
        rules: Default::default(),
        db: db.clone(),
        live,
        control,
        throttle: web::Throttle::default(),
        metrics: metrics.clone(),
        secure_cookies: a.secure_cookies,
    });
    if !a.listen.ip().is_loopback() {
        tracing::warn!(
            "console: listening on {} (not loopback): put TLS in front and use --secure-cookies",
            a.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    serve_metrics(a.metrics_addr, db, metrics).await?;
    println!(
        "console: http://{} (metrics on http://{}/metrics)",
        listener.local_addr()?,
        a.metrics_addr
    );
    let app = web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            until.await;
            let _ = closing_tx.send(true);
        })
        .await
        .context("serving")?;
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = ingest {
        join_ingest(h).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What each ingested batch does once committed: count it, and send its new alerts to the
/// live view (no receiver is fine: nobody is watching).
fn publisher(
    live: tokio::sync::broadcast::Sender<String>,
    metrics: Arc<metrics::Metrics>,
) -> impl Fn(&store::ingest::Applied) + Send + 'static {
    move |applied: &store::ingest::Applied| {
        metrics.ingested(applied);
        for n in &applied.new_alerts {
            if let Ok(j) = serde_json::to_string(n) {
                let _ = live.send(j);
            }
        }
    }
}

/// With brokers: create the missing topics, open the control topic's writer, and start the
/// ingest thread (it runs until `stop`).
async fn start_kafka(
    a: &ServeArgs,
    brokers: &str,
    db: &Db,
    stop: &Arc<AtomicBool>,
    publish: impl Fn(&store::ingest::Applied) + Send + 'static,
) -> Result<(
    Arc<kafka::ControlWriter>,
    std::thread::JoinHandle<Result<()>>,
)> {
    let cfg = kafka::KafkaConfig {
        brokers: brokers.to_string(),
        props: a.props.clone(),
        alerts: a.alerts_topic.clone(),
        commands: a.commands_topic.clone(),
        control: a.control_topic.clone(),
        evidence: a.evidence_topic.clone(),
        partitions: a.partitions,
    };
    let c2 = cfg.clone();
    tokio::task::spawn_blocking(move || c2.ensure_topics()).await??;
    let control = Arc::new(kafka::ControlWriter::new(&cfg)?);
    let (db2, stop2, rt) = (db.clone(), stop.clone(), tokio::runtime::Handle::current());
    let on_batch: kafka::OnBatch = Box::new(move |applied| publish(&applied));
    let ingest = std::thread::Builder::new()
        .name("console-ingest".into())
        .spawn(move || kafka::ingest_loop(cfg, db2, rt, stop2, on_batch))?;
    Ok((control, ingest))
}

/// Serve /metrics and /healthz on their own port, in the background.
async fn serve_metrics(addr: SocketAddr, db: Db, metrics: Arc<metrics::Metrics>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let router = metrics_router(db, metrics);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}

/// Wait for the stopped ingest thread; its failure is logged, not the console's.
async fn join_ingest(h: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    let r = tokio::task::spawn_blocking(move || h.join()).await?;
    if let Ok(Err(e)) = r {
        tracing::error!("console: ingest: {e:#}");
    }
    Ok(())
}

fn metrics_router(db: Db, m: Arc<metrics::Metrics>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let (db, m) = (db.clone(), m.clone());
                async move {
                    match m.render(&db).await {
                        Ok(s) => (axum::http::StatusCode::OK, s),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            format!("{e:#}"),
                        ),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// SIGTERM or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
