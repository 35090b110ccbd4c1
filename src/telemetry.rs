//! Logs: `tracing` events, written to stderr as human lines (on a terminal, with colour) or as
//! JSON lines (`--log-format json`, for log shippers), every line passed through the PAN
//! masker on its way out, whatever the event carried. `SWITCHGUARD_LOG` filters
//! (`RUST_LOG` syntax, default `info`).

use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human lines (colour on a terminal).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Stderr behind the masker: each formatted event is one `write`, masked whole.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedStderr;

impl Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let masked = crate::pan::redact_bytes(buf);
        io::stderr().lock().write_all(&masked)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        MaskedStderr
    }
}

/// Install the global subscriber (once; later calls are ignored, as in tests).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("SWITCHGUARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MaskedStderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
