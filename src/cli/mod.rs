//! The `dataknobs` command line: argument parsing ([`args`]), the session that runs scripts
//! and meta commands ([`session`]), printing results as they stream ([`print`]), the
//! interactive prompt ([`repl`]) and statement boundaries ([`split`]). `main.rs` only calls
//! [`main_entry`].
//!
//! Batch mode (`-c`, `-f FILE`, `-f -`, or SQL piped on stdin) prints no banner and no
//! timings, and exits non-zero at the first failing statement (`--continue-on-error` goes
//! on); the prompt starts only when stdin is a terminal.

pub mod args;
pub mod print;
pub mod repl;
pub mod session;
pub mod split;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::config::file::ConfigFile;
use crate::engine::Engine;
use crate::error::{Error, Result};
use args::{Args, Input};
use session::{Outcome, Session, Source};

/// The message of the last panic (kept by the hook [`quiet_panics`] installs).
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Panics print no trace (set RUST_BACKTRACE to see one): the statement that hit one fails
/// with one `Error:` line and the prompt goes on.
pub fn quiet_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let text = payload_text(info.payload());
        // Statements run on the main thread, which reports their panics as their error; a
        // panic elsewhere (a backend's background task) may end in a cut-off result, so
        // say it happened.
        if std::thread::current().name() != Some("dataknobs-main") {
            eprintln!(
                "Warning: internal error in a background task ({}{at}); a result may be \
                 incomplete — please report it",
                print::one_line(&text)
            );
        }
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(format!("{text}{at}"));
        }
    }));
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// The error for a statement that panicked.
pub fn panic_error(payload: &(dyn std::any::Any + Send)) -> Error {
    let text = LAST_PANIC
        .lock()
        .ok()
        .and_then(|mut l| l.take())
        .unwrap_or_else(|| payload_text(payload));
    Error::internal(format!(
        "the statement stopped on a bug in dataknobs or a library it uses ({}); \
         nothing else is affected — please report it",
        print::one_line(&text)
    ))
}

/// The message of a panic that escaped (for `main`).
pub fn escaped_panic() -> String {
    LAST_PANIC
        .lock()
        .ok()
        .and_then(|mut l| l.take())
        .unwrap_or_else(|| "a panic".to_string())
}

/// Runs the command line; returns the process exit code.
pub async fn main_entry() -> ExitCode {
    quiet_panics();
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", session::message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Attaches what the config file, `DATABASE_URL` and `--attach` name.
async fn attach_all(engine: &Engine, args: &Args) -> Result<()> {
    let mut default_named = args.default_backend.is_some();
    if let Some(config) = ConfigFile::find(args.config.as_deref())? {
        for warning in config.warnings() {
            eprintln!("Warning: {warning}");
        }
        config.attach_to(engine).await?;
        default_named |= config.default.is_some();
    }
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
        && engine.backend("default").is_none()
    {
        engine
            .attach("default", url.trim())
            .await
            .map_err(|e| Error::new(e.kind(), format!("DATABASE_URL: {}", session::message(&e))))?;
        // Unqualified names mean that database unless the config or --default says otherwise
        // (`default` is an SQL keyword: `"default".t` names its tables explicitly).
        if !default_named {
            engine.set_default_backend("default")?;
        }
    }
    for spec in &args.attach {
        let (name, url) = args::parse_attach(spec)?;
        engine.attach(&name, &url).await?;
    }
    if let Some(default) = &args.default_backend {
        engine.set_default_backend(default)?;
    }
    Ok(())
}

async fn run(args: Args) -> Result<ExitCode> {
    let engine = Engine::new();
    attach_all(&engine, &args).await?;
    let mut session = Session::new(engine, args.format);
    session.max_rows = args.max_rows;
    session.quiet = args.quiet;
    session.continue_on_error = args.continue_on_error;
    let mut inputs = args.commands_in_order();
    if inputs.is_empty() && !std::io::stdin().is_terminal() {
        inputs.push(Input::File("-".into()));
    }
    if inputs.is_empty() {
        session.interactive = true;
        repl::run(&mut session).await?;
        session.engine.sync().await?;
        return Ok(ExitCode::SUCCESS);
    }
    for input in inputs {
        let (text, source) = match input {
            Input::Command(sql) => (sql, Source::Command),
            Input::File(path) if path.as_os_str() == "-" => {
                let text = std::io::read_to_string(std::io::stdin())
                    .map_err(|e| Error::io("cannot read SQL from stdin", e))?;
                (text, Source::File("<stdin>".into()))
            }
            Input::File(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::io(format!("cannot read SQL file '{shown}'"), e))?;
                (text, Source::File(shown))
            }
        };
        match session.run_script(&text, &source).await {
            Outcome::Done => {}
            Outcome::Quit | Outcome::Closed => break,
            Outcome::Failed => return Ok(ExitCode::FAILURE),
            Outcome::Cancelled => return Ok(ExitCode::from(130)),
        }
    }
    session.engine.sync().await?;
    Ok(if session.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
