//! The `switchboard` binary: the console, `serve`, `simulate` and the other
//! commands (see `cli`).

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
