//! The `switchboard` binary: the console, `serve`, `simulate` and the other
//! commands (see `cli`).

/// mimalloc: thread-local free lists, so that the gateway's per-request
/// allocations (header maps, bodies, JSON) do not contend between lanes
/// (measured in BENCHMARKS.md against the system allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
