//! The `dataknobs` command line: argument parsing ([`args`]), running statements ([`exec`]),
//! printing results ([`print`]), the interactive prompt ([`repl`]) and statement boundaries
//! ([`split`]). `main.rs` only calls
//! [`main_entry`].

pub mod args;
pub mod exec;
pub mod print;
pub mod repl;
pub mod split;

use std::process::ExitCode;

use clap::Parser;

use crate::engine::Engine;
use args::Args;

/// Runs the command line; returns the process exit code.
pub async fn main_entry() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", print::one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> crate::Result<()> {
    let engine = Engine::new();
    for spec in &args.attach {
        let (name, url) = args::parse_attach(spec)?;
        engine.attach(&name, &url).await?;
    }
    if let Some(default) = &args.default_backend {
        engine.set_default_backend(default)?;
    }
    let format = args.format;
    let mut ran_any = false;
    for item in args.commands_in_order() {
        ran_any = true;
        let sql = match item {
            args::Input::Command(sql) => sql,
            args::Input::File(path) => std::fs::read_to_string(&path).map_err(|e| {
                crate::Error::io(format!("cannot read SQL file '{}'", path.display()), e)
            })?,
        };
        exec::run_script(&engine, &sql, format, &mut std::io::stdout(), false).await?;
    }
    if !ran_any {
        repl::run(&engine, format).await?;
    }
    engine.sync().await
}
