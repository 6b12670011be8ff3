//! The `dataknobs` binary: see [`dataknobs::cli`].
//!
//! The prompt and its runtime's threads get large stacks (reserved, not used, until needed):
//! deep expressions are refused at `dataknobs.max_expression_depth`, and a user who raises
//! that limit should not meet the operating system's default 2–8 MiB first.

const STACK: usize = 64 << 20;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let run = || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_stack_size(STACK)
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("dataknobs: cannot start the async runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        runtime.block_on(dataknobs::cli::main_entry())
    };
    match std::thread::Builder::new()
        .name("dataknobs-main".into())
        .stack_size(STACK)
        .spawn(run)
    {
        Ok(handle) => handle.join().unwrap_or_else(|_| {
            eprintln!(
                "Error: internal error: dataknobs stopped on a bug ({}); please report it",
                dataknobs::cli::escaped_panic()
            );
            std::process::ExitCode::FAILURE
        }),
        Err(e) => {
            eprintln!("dataknobs: cannot start the main thread: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
