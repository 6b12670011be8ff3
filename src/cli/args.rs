//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::error::{Error, Result};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned table (default); at most --max-rows rows are shown.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    /// One JSON array of objects per result.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Markdown table.
    Markdown,
    /// One block per row, one line per column (as psql's \x).
    Vertical,
}

impl Format {
    /// The name `\format` and `--format` take.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Markdown => "markdown",
            Format::Vertical => "vertical",
        }
    }

    /// Parses a `\format` argument.
    pub fn parse(name: &str) -> Option<Format> {
        <Format as ValueEnum>::from_str(name, true).ok()
    }
}

/// dataknobs: one SQL engine over every store.
///
/// With no -c or -f, and a terminal on stdin, it starts an interactive prompt over an
/// in-memory backend; SQL piped on stdin runs as a script.
#[derive(Debug, Parser)]
#[command(name = "dataknobs", version, about)]
pub struct Args {
    /// Run SQL or a meta command (\d, \attach …) and exit (repeatable; all run in order in
    /// one session).
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,

    /// Run the statements in FILE ("-" for stdin) and exit (repeatable).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        allow_hyphen_values = true
    )]
    pub file: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Read backends from this TOML config file (default: $DATAKNOBS_CONFIG, else
    /// $XDG_CONFIG_HOME/dataknobs/config.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Attach a backend: NAME=URL, e.g. mem2=memory:// (repeatable).
    #[arg(long = "attach", value_name = "NAME=URL")]
    pub attach: Vec<String>,

    /// The attached backend that unqualified table names refer to (default: memory).
    #[arg(long = "default", value_name = "NAME")]
    pub default_backend: Option<String>,

    /// The most rows the table format shows (0: all); the rest are counted.
    #[arg(long = "max-rows", value_name = "N", default_value_t = 40)]
    pub max_rows: usize,

    /// In scripts, go on after a failing statement (the exit code is still non-zero).
    #[arg(long = "continue-on-error")]
    pub continue_on_error: bool,

    /// No banner, no row counts or timings.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    #[arg(skip)]
    order: Vec<Input>,
}

/// One -c or -f, in command-line order.
#[derive(Debug, Clone)]
pub enum Input {
    Command(String),
    /// A file path; "-" is stdin.
    File(PathBuf),
}

impl Args {
    /// The -c and -f arguments in the order they were given.
    pub fn commands_in_order(&self) -> Vec<Input> {
        if !self.order.is_empty() {
            return self.order.clone();
        }
        // Recover the interleaving from the raw arguments.
        let raw: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let (mut c, mut f) = (self.command.iter(), self.file.iter());
        let mut out = Vec::new();
        let mut i = 1;
        while i < raw.len() {
            let a = raw[i].as_str();
            let is_c = a == "-c"
                || a == "--command"
                || a.starts_with("--command=")
                || (a.starts_with("-c") && a.len() > 2 && !a.starts_with("--"));
            let is_f = a == "-f"
                || a == "--file"
                || a.starts_with("--file=")
                || (a.starts_with("-f") && a.len() > 2 && !a.starts_with("--"));
            if is_c {
                if let Some(s) = c.next() {
                    out.push(Input::Command(s.clone()));
                }
            } else if is_f && let Some(p) = f.next() {
                out.push(Input::File(p.clone()));
            }
            if (a == "-c"
                || a == "--command"
                || a == "-f"
                || a == "--file"
                || a == "--format"
                || a == "--attach"
                || a == "--config"
                || a == "--max-rows"
                || a == "--default")
                && i + 1 < raw.len()
            {
                i += 1;
            }
            i += 1;
        }
        out.extend(c.map(|s| Input::Command(s.clone())));
        out.extend(f.map(|p| Input::File(p.clone())));
        out
    }
}

/// Splits `NAME=URL`.
pub fn parse_attach(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        // A name holds no ':' — else the '=' was inside a URL's query (`…?sslmode=require`).
        Some((name, url))
            if !name.trim().is_empty() && !url.trim().is_empty() && !name.contains(':') =>
        {
            Ok((name.trim().to_string(), url.trim().to_string()))
        }
        _ => Err(Error::config(format!(
            "--attach takes NAME=URL (e.g. mem2=memory://), got '{}'",
            crate::config::redact_url(spec)
        ))),
    }
}
