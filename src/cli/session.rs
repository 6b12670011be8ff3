//! One session of the command line: the engine, the output settings (`\format`, `\x`,
//! `\timing`, `\o`, the table's row cap) and the runner shared by the prompt, `-c`, `-f` and
//! piped stdin. Scripts mix SQL statements and meta commands (a line starting with `\`);
//! each statement runs as it streams to the output, and Ctrl-C cancels it (the session goes
//! on in the prompt; a script stops).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::args::Format;
use super::print::{self, Printed};
use super::split::{Piece, split_script};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Where a script came from, for error messages (`file.sql:12: …`).
#[derive(Debug, Clone)]
pub enum Source {
    /// Typed at the prompt.
    Prompt,
    /// A `-c` argument.
    Command,
    /// A file (or `<stdin>`).
    File(String),
}

/// How a script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every piece ran (or failed, under --continue-on-error / in the prompt).
    Done,
    /// `\q`.
    Quit,
    /// Stopped at an error.
    Failed,
    /// Ctrl-C.
    Cancelled,
    /// The reader of the output went away (`| head`).
    Closed,
}

const HELP: &str = "\
Enter SQL ending with ';'. Tables: `name` (default backend), `backend.name`, `backend.schema.name`.
  \\d                 list tables by backend        \\d TABLE       columns, types, key
  \\backends          attached backends             \\kinds         backend kinds of this build
  \\attach NAME URL   attach a backend              \\detach NAME   detach it (data stays)
  \\format FORMAT     table|csv|tsv|json|ndjson|markdown|vertical
  \\x [on|off]        vertical rows                 \\timing [on|off]  time each statement
  \\maxrows N         rows the table shows (0: all) \\pager [on|off]   page tall tables
  \\i FILE            run a script                  \\o [FILE]      output to FILE (none: stdout)
  \\q                 quit (also Ctrl-D)            \\?             this help
Ctrl-C cancels the running statement. SET dataknobs.pushdown = false; evaluates every filter
in DataFusion (for comparisons).";

/// The command line's session.
pub struct Session {
    pub engine: Engine,
    pub format: Format,
    pub expanded: bool,
    pub timing: bool,
    pub max_rows: usize,
    pub quiet: bool,
    pub interactive: bool,
    pub continue_on_error: bool,
    pub pager: bool,
    /// `\o FILE`: where results go instead of stdout.
    output: Option<(String, std::fs::File)>,
    /// Any statement failed (the exit code of a script run with --continue-on-error).
    pub failed: bool,
}

/// A failed step: its message (one line, for `Error: …`) or a cancellation.
enum Step {
    Failed(String),
    /// Failed, and already said so (an included script's error).
    Reported,
    /// Cancelled, and already said so (in an included script).
    ReportedCancel,
    Cancelled,
    Closed,
    Quit,
}

impl Session {
    pub fn new(engine: Engine, format: Format) -> Self {
        Session {
            engine,
            format,
            expanded: false,
            timing: false,
            max_rows: 40,
            quiet: false,
            interactive: false,
            continue_on_error: false,
            pager: true,
            output: None,
            failed: false,
        }
    }

    /// Runs a script (SQL and meta commands) from `source`.
    pub async fn run_script(&mut self, text: &str, source: &Source) -> Outcome {
        let pieces = split_script(text);
        let many = pieces.len() > 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let (line, result) = match &piece {
                Piece::Meta { line, text } => {
                    let run = Box::pin(self.meta(text, source));
                    let run = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run));
                    // Ctrl-C also stops a meta command (an \attach waiting on a server).
                    let r = tokio::select! {
                        r = run => r.unwrap_or_else(|p| {
                            Err(Step::Failed(message(&super::panic_error(p.as_ref()))))
                        }),
                        _ = tokio::signal::ctrl_c() => Err(Step::Cancelled),
                    };
                    (*line, r)
                }
                Piece::Sql { line, text } => (*line, self.statement(text).await),
            };
            match result {
                Ok(()) => {}
                Err(Step::Quit) => return Outcome::Quit,
                Err(Step::Closed) => return Outcome::Closed,
                // Ctrl-C stops the whole entry or script (the prompt goes on).
                Err(Step::Cancelled) => {
                    eprintln!("Cancelled.");
                    return Outcome::Cancelled;
                }
                Err(Step::ReportedCancel) => return Outcome::Cancelled,
                Err(Step::Reported) => {
                    self.failed = true;
                    if !self.interactive && !self.continue_on_error {
                        return Outcome::Failed;
                    }
                }
                Err(Step::Failed(message)) => {
                    self.failed = true;
                    let message = match source {
                        Source::File(name) => {
                            format!("{name}:{}: {}", line, file_lines(&message, line))
                        }
                        _ if many => format!("statement {}: {message}", i + 1),
                        _ => message,
                    };
                    eprintln!("Error: {message}");
                    if !self.interactive && !self.continue_on_error {
                        return Outcome::Failed;
                    }
                }
            }
        }
        Outcome::Done
    }

    /// Runs one SQL statement, printing its result as it streams.
    async fn statement(&mut self, sql: &str) -> std::result::Result<(), Step> {
        let start = Instant::now();
        let progress = Arc::new(AtomicU64::new(0));
        self.engine.write_progress().take();
        let spinner = self.spinner(progress.clone());
        let quiet_result = is_command(sql);
        let format = if self.expanded {
            Format::Vertical
        } else {
            self.format
        };
        let max_rows = self.max_rows;
        let page = self.interactive
            && self.pager
            && self.output.is_none()
            && format == Format::Table
            && std::io::stdout().is_terminal();
        let engine = &self.engine;
        let mut buffer: Vec<u8> = Vec::new();
        let mut stdout = std::io::stdout();
        let out: &mut dyn Write = match (&mut self.output, page) {
            (Some((_, f)), _) => f,
            (None, true) => &mut buffer,
            (None, false) => &mut stdout,
        };
        let work = async {
            let df = engine.sql(sql).await?;
            let stream = df.execute_stream().await?;
            let printed = if quiet_result {
                drain(stream).await?;
                Printed::default()
            } else {
                print::print_stream(out, stream, format, max_rows, &progress).await?
            };
            engine.sync().await?;
            Ok::<Printed, Error>(printed)
        };
        // A bug that panics inside a query (ours or a library's) fails that statement only.
        let work = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work));
        let result = tokio::select! {
            r = work => Some(r.unwrap_or_else(|payload| Err(super::panic_error(payload.as_ref())))),
            _ = tokio::signal::ctrl_c() => None,
        };
        if let Some(s) = spinner {
            s.abort();
            let _ = s.await;
        }
        self.write_summary(start.elapsed());
        let printed = match result {
            None => return Err(Step::Cancelled),
            Some(Err(e)) => return Err(Step::Failed(message(&e))),
            Some(Ok(p)) => p,
        };
        if page {
            show_paged(&buffer);
        }
        if printed.broken {
            return Err(Step::Closed);
        }
        self.footer(&printed, quiet_result, format, start.elapsed());
        Ok(())
    }

    /// The lines after a result: the table's cap, and in the prompt the row count and time.
    fn footer(&mut self, printed: &Printed, command: bool, format: Format, took: Duration) {
        let mut lines = Vec::new();
        if format == Format::Table && printed.shown < printed.rows {
            lines.push(format!(
                "(first {} of {} rows shown; \\maxrows 0 shows all, --format csv streams them)",
                printed.shown, printed.rows
            ));
        }
        let time = format!("{:.3} ms", took.as_secs_f64() * 1000.0);
        if self.interactive && !self.quiet {
            let rows = if command {
                "OK".to_string()
            } else if printed.rows == 1 {
                "1 row".to_string()
            } else {
                format!("{} rows", printed.rows)
            };
            lines.push(if self.timing {
                format!("{rows} ({time})")
            } else {
                rows
            });
        } else if self.timing {
            lines.push(format!("Time: {time}"));
        }
        let out: &mut dyn Write = match &mut self.output {
            Some((_, f)) => f,
            None => &mut std::io::stdout(),
        };
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }

    /// After an INSERT (or CREATE TABLE AS), on a terminal: rows read, written and failed
    /// per target table.
    fn write_summary(&self, took: Duration) {
        let targets = self.engine.write_progress().take();
        if targets.is_empty() || self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let secs = took.as_secs_f64().max(1e-6);
        for t in targets {
            eprintln!(
                "{}: {} rows read, {} written, {} failed ({:.0} rows/s)",
                t.target,
                t.read,
                t.written,
                t.failed,
                t.written as f64 / secs
            );
        }
    }

    /// A spinner with the rows so far (rows printed, or rows an INSERT has read), on stderr,
    /// after a moment, on a terminal.
    fn spinner(&self, rows: Arc<AtomicU64>) -> Option<tokio::task::JoinHandle<()>> {
        if self.quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let registry = self.engine.write_progress_handle();
        Some(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let bar = indicatif::ProgressBar::new_spinner();
            let _clear = ClearOnDrop(bar.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            let start = Instant::now();
            loop {
                let printed = rows.load(Ordering::Relaxed);
                let written = registry.progress.rows_read();
                let secs = start.elapsed().as_secs_f64() + 0.7;
                let what = if written > printed {
                    format!("{written} rows read ({:.0} rows/s)", written as f64 / secs)
                } else {
                    format!("{printed} rows")
                };
                bar.set_message(format!("{what}, {secs:.1}s (Ctrl-C cancels)"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }

    /// A confirmation in the prompt (`Timing is on.`); scripts stay quiet.
    fn tell(&self, text: &str) {
        if self.interactive && !self.quiet {
            println!("{text}");
        }
    }

    fn write_out(&mut self, text: &str) {
        let out: &mut dyn Write = match &mut self.output {
            Some((_, f)) => f,
            None => &mut std::io::stdout(),
        };
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Prints a meta command's result in the session's format (every row).
    async fn print_batch(
        &mut self,
        batch: datafusion::arrow::array::RecordBatch,
    ) -> std::result::Result<(), Step> {
        let schema = batch.schema();
        let stream =
            datafusion::physical_plan::memory::MemoryStream::try_new(vec![batch], schema, None)
                .map_err(|e| Step::Failed(message(&e.into())))?;
        let format = if self.expanded {
            Format::Vertical
        } else {
            self.format
        };
        let progress = AtomicU64::new(0);
        let mut stdout = std::io::stdout();
        let out: &mut dyn Write = match &mut self.output {
            Some((_, f)) => f,
            None => &mut stdout,
        };
        let printed = print::print_stream(out, Box::pin(stream), format, 0, &progress)
            .await
            .map_err(|e| Step::Failed(message(&e)))?;
        if printed.broken {
            return Err(Step::Closed);
        }
        Ok(())
    }

    /// Runs one meta command line (`\d`, `\attach …`).
    async fn meta(&mut self, line: &str, source: &Source) -> std::result::Result<(), Step> {
        let fail = |m: String| Step::Failed(m);
        let body = line.trim_start_matches('\\');
        let mut words = body.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let on_off = |current: bool, what: &str| -> std::result::Result<bool, Step> {
            match args.first().map(|a| a.to_ascii_lowercase()) {
                None => Ok(!current),
                Some(a) if a == "on" => Ok(true),
                Some(a) if a == "off" => Ok(false),
                Some(a) => Err(Step::Failed(format!("\\{what} takes on or off, got '{a}'"))),
            }
        };
        match cmd {
            "q" | "quit" => return Err(Step::Quit),
            "?" | "h" | "help" => self.write_out(HELP),
            "d" | "dt" | "d+" => {
                let batch = match args.first() {
                    None => self.engine.list_tables(None).await,
                    Some(t) if cmd == "dt" => self.engine.list_tables(Some(t)).await,
                    Some(t) => self.engine.describe(t).await,
                }
                .map_err(|e| fail(message(&e)))?;
                self.print_batch(batch).await?;
            }
            "backends" => {
                let batch = self.backends_batch().map_err(|e| fail(message(&e)))?;
                self.print_batch(batch).await?;
            }
            "kinds" => {
                let batch = kinds_batch(&self.engine).map_err(|e| fail(message(&e)))?;
                self.print_batch(batch).await?;
            }
            "attach" => {
                let (name, url) = match args.as_slice() {
                    [name, url] => (name.to_string(), url.to_string()),
                    [spec] if spec.contains('=') => {
                        super::args::parse_attach(spec).map_err(|e| fail(message(&e)))?
                    }
                    _ => {
                        return Err(fail(
                            "\\attach takes NAME URL, e.g. \\attach lake file:///data".into(),
                        ));
                    }
                };
                self.engine
                    .attach(&name, &url)
                    .await
                    .map_err(|e| fail(message(&e)))?;
                if self.interactive && !self.quiet {
                    eprintln!(
                        "attached {name} ({})",
                        self.engine
                            .backend(&name)
                            .map(|b| b.location())
                            .unwrap_or_default()
                    );
                }
            }
            "detach" => match args.as_slice() {
                [name] => self.engine.detach(name).map_err(|e| fail(message(&e)))?,
                _ => return Err(fail("\\detach takes the backend's name".into())),
            },
            "timing" => {
                self.timing = on_off(self.timing, "timing")?;
                self.tell(&format!("Timing is {}.", word(self.timing)));
            }
            "x" => {
                self.expanded = on_off(self.expanded, "x")?;
                self.tell(&format!("Expanded display is {}.", word(self.expanded)));
            }
            "pager" => {
                self.pager = on_off(self.pager, "pager")?;
                self.tell(&format!("Pager is {}.", word(self.pager)));
            }
            "format" | "f" => match args.first() {
                None => self.write_out(self.format.name()),
                Some(f) => {
                    self.format = Format::parse(f).ok_or_else(|| {
                        fail(format!(
                            "unknown format '{f}'; use table, csv, tsv, json, ndjson, markdown or vertical"
                        ))
                    })?;
                    self.expanded = false;
                    self.tell(&format!("Output format is {}.", self.format.name()));
                }
            },
            "maxrows" => match args.first().map(|a| a.parse::<usize>()) {
                Some(Ok(n)) => self.max_rows = n,
                None => self.write_out(&self.max_rows.to_string()),
                Some(Err(_)) => {
                    return Err(fail(
                        "\\maxrows takes a whole number (0 shows every row)".into(),
                    ));
                }
            },
            "o" | "out" => match args.first() {
                None => self.output = None,
                Some(path) => {
                    let file = std::fs::File::create(path).map_err(|e| {
                        fail(format!(
                            "cannot write '{path}': {e}; check the folder exists"
                        ))
                    })?;
                    self.output = Some((path.to_string(), file));
                }
            },
            "i" | "include" => {
                let Some(path) = args.first() else {
                    return Err(fail("\\i takes a file name".into()));
                };
                let path = resolve_relative(path, source);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("cannot read '{path}': {e}")))?;
                let saved = self.interactive;
                // A script run from the prompt stops at its first error, as one from -f.
                self.interactive = false;
                let outcome = Box::pin(self.run_script(&text, &Source::File(path.clone()))).await;
                self.interactive = saved;
                match outcome {
                    Outcome::Done => {}
                    Outcome::Quit => return Err(Step::Quit),
                    Outcome::Closed => return Err(Step::Closed),
                    // The included script printed its own error.
                    Outcome::Failed => return Err(Step::Reported),
                    Outcome::Cancelled => return Err(Step::ReportedCancel),
                }
            }
            "" => return Err(fail("an empty meta command; type \\? for help".into())),
            other => {
                return Err(fail(format!(
                    "unknown command '\\{other}'; type \\? for help"
                )));
            }
        }
        Ok(())
    }

    fn backends_batch(&self) -> Result<datafusion::arrow::array::RecordBatch> {
        let default = self.engine.default_backend();
        let mut rows: Vec<[String; 4]> = self
            .engine
            .backends()
            .into_iter()
            .map(|(name, b)| {
                let is_default = if name == default { "yes" } else { "" };
                [
                    name,
                    b.kind().to_string(),
                    b.location(),
                    is_default.to_string(),
                ]
            })
            .collect();
        rows.sort();
        string_batch(&["name", "kind", "location", "default"], rows)
    }
}

struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn string_batch<const N: usize>(
    names: &[&str; N],
    rows: Vec<[String; N]>,
) -> Result<datafusion::arrow::array::RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..N)
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    Ok(datafusion::arrow::array::RecordBatch::try_new(
        schema, columns,
    )?)
}

fn kinds_batch(engine: &Engine) -> Result<datafusion::arrow::array::RecordBatch> {
    let rows = engine
        .factory()
        .backend_infos()
        .into_iter()
        .map(|i| {
            [
                i.name,
                i.example_url,
                if i.persistent { "yes" } else { "no" }.to_string(),
                i.description,
            ]
        })
        .collect();
    string_batch(&["kind", "url", "persistent", "description"], rows)
}

async fn drain(mut stream: datafusion::execution::SendableRecordBatchStream) -> Result<()> {
    use futures::StreamExt;
    while let Some(b) = stream.next().await {
        b?;
    }
    Ok(())
}

fn word(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Is this a statement whose result is not worth printing (CREATE, DROP, SET …)?
fn is_command(sql: &str) -> bool {
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase();
    // (A leading comment makes the first word a comment's: those statements print.)
    let starts_with_comment =
        sql.trim_start().starts_with("--") || sql.trim_start().starts_with("/*");
    !starts_with_comment
        && matches!(
            first.as_str(),
            "CREATE" | "DROP" | "SET" | "RESET" | "ALTER" | "USE" | "BEGIN" | "COMMIT" | "ROLLBACK"
        )
}

/// An error as one line for `Error: …`.
pub fn message(e: &Error) -> String {
    let text = print::one_line(&e.to_string());
    // "query error" says nothing the message does not (other kinds — connection error,
    // configuration error — do say something).
    match e.backend() {
        Some(b) => text.replacen(&format!("{b}: query error: "), &format!("{b}: "), 1),
        None => text.trim_start_matches("query error: ").to_string(),
    }
}

/// A parser position counted from the statement (`at line 2, column 5`) counted from the
/// file instead, for a statement starting on line `first`.
fn file_lines(message: &str, first: usize) -> String {
    // Only the parser's positions are the statement's (a CSV reader's "at line N" is the
    // data file's).
    if !message.starts_with("syntax error:") {
        return message.to_string();
    }
    let Some(at) = message.find(" at line ") else {
        return message.to_string();
    };
    let rest = &message[at + " at line ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    match digits.parse::<usize>() {
        Ok(n) if n >= 1 => format!(
            "{} at line {}{}",
            &message[..at],
            first + n - 1,
            &rest[digits.len()..]
        ),
        _ => message.to_string(),
    }
}

/// `\i other.sql` inside a file runs the file beside it (as psql's `\ir`); at the prompt or in
/// `-c`, relative to the working folder.
fn resolve_relative(path: &str, source: &Source) -> String {
    let p = std::path::Path::new(path);
    match source {
        Source::File(f) if p.is_relative() && f != "<stdin>" => std::path::Path::new(f)
            .parent()
            .map(|d| d.join(p).to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_string()),
        _ => path.to_string(),
    }
}

/// Shows a rendered result: through the pager when it is taller than the terminal.
fn show_paged(text: &[u8]) {
    let lines = text.iter().filter(|b| **b == b'\n').count();
    let height = terminal_height().unwrap_or(24);
    let pager = std::env::var("PAGER").unwrap_or_else(|_| "less -FRSX".to_string());
    if lines + 2 > height && !pager.trim().is_empty() {
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&pager)
            .stdin(std::process::Stdio::piped())
            .spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text);
            }
            let _ = child.wait();
            return;
        }
    }
    let mut out = std::io::stdout();
    let _ = out.write_all(text);
    let _ = out.flush();
}

fn terminal_height() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct for a terminal file descriptor and fails
    // (returning -1, leaving it zeroed) for anything else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some(size.ws_row as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_lines_count_from_the_file() {
        assert_eq!(
            file_lines(
                "syntax error: Expected: x, found: y at line 2, column 5",
                10
            ),
            "syntax error: Expected: x, found: y at line 11, column 5"
        );
        assert_eq!(file_lines("no position", 3), "no position");
        assert_eq!(
            file_lines("cannot parse 'x' for column 0 at line 4", 10),
            "cannot parse 'x' for column 0 at line 4"
        );
    }

    #[test]
    fn commands_print_no_result() {
        assert!(is_command("create table t (a int)"));
        assert!(is_command("  SET x = 1"));
        assert!(!is_command("select 1"));
        assert!(!is_command("insert into t values (1)"));
    }
}
