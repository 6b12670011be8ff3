//! The interactive prompt: rustyline, multi-line input until `;`, history in
//! `~/.dataknobs_history`. Meta commands: `\q` quits, `\?` helps, `\dt` lists tables.

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::args::Format;
use super::exec::run_script;
use super::print::one_line;
use super::split::is_complete;
use crate::engine::Engine;
use crate::error::{Error, Result};

const HELP: &str = "Enter SQL ending with ';'. Tables: `name` (default backend), `backend.name`, `backend.schema.name`.
  \\dt   list tables        \\q   quit        \\?   this help
  SET dataknobs.pushdown = false;   evaluate every filter in DataFusion (for comparisons)";

/// Runs the prompt until EOF or `\q`.
pub async fn run(engine: &Engine, format: Format) -> Result<()> {
    let mut rl = DefaultEditor::new()
        .map_err(|e| Error::internal(format!("cannot start the line editor: {e}")))?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".dataknobs_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!(
        "dataknobs {} — type \\? for help, \\q to quit",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "dataknobs> "
        } else {
            "       ...> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = rl.add_history_entry(trimmed);
                    match trimmed {
                        "\\q" => break,
                        "\\?" | "\\h" => println!("{HELP}"),
                        "\\dt" => {
                            let sql = "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables \
                                       WHERE table_schema <> 'information_schema' AND table_catalog <> 'dataknobs' ORDER BY 1, 2, 3";
                            if let Err(e) =
                                run_script(engine, sql, format, &mut std::io::stdout(), false).await
                            {
                                eprintln!("Error: {}", one_line(&e.to_string()));
                            }
                        }
                        other => eprintln!("Error: unknown command '{other}'; type \\? for help"),
                    }
                    continue;
                }
                if matches!(trimmed, "quit" | "exit") && buffer.is_empty() {
                    break;
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if is_complete(&buffer) {
                    let _ = rl.add_history_entry(buffer.as_str());
                    if let Err(e) =
                        run_script(engine, &buffer, format, &mut std::io::stdout(), true).await
                    {
                        eprintln!("Error: {}", one_line(&e.to_string()));
                    }
                    buffer.clear();
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::internal(format!("reading input: {e}"))),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}
