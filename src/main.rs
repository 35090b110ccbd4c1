//! The `switchguard` binary: parse the command line, hand over to [`switchguard::app`].

fn main() -> std::process::ExitCode {
    switchguard::app::main()
}
