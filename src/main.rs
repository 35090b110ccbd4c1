//! The `switchguard` binary: parse the command line, hand over to [`switchguard::app`].

/// mimalloc: per-thread heaps, so what the reader thread allocates and the engine thread frees
/// does not contend for one allocator lock (README "Speed", measured there).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchguard::app::main()
}
