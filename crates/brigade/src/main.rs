//! The `brigade` binary: parses the command line, loads settings and runs one command.
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration, 130 and 143
//! a pipeline run stopped by SIGINT or SIGTERM.

mod cli;
mod logging;

use std::process::ExitCode;

use clap::Parser;

// mimalloc returns freed memory to the OS where glibc's per-thread arenas keep it: after a
// bulk load the server's RSS falls back instead of staying at its peak.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(cli::Failure::Runtime(e)) => {
            eprintln!("error: {}", brigade_core::report::chain(e.as_ref()));
            ExitCode::from(1)
        }
        Err(cli::Failure::Signal { code, message }) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}
