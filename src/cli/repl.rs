//! The interactive prompt: rustyline, multi-line input until `;`, history in the XDG state
//! folder written after every entry, and tab completion of SQL keywords, meta commands,
//! backends, tables and columns from the live catalog.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::session::{Outcome, Session, Source};
use super::split::is_complete;
use crate::error::{Error, Result};

/// The history file: `$XDG_STATE_HOME/dataknobs/history` (default
/// `~/.local/state/dataknobs/history`).
pub fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("dataknobs").join("history"))
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT JOIN",
    "INNER JOIN",
    "FULL JOIN",
    "CROSS JOIN",
    "ON",
    "USING",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS NULL",
    "IS NOT NULL",
    "LIKE",
    "ILIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "UNION",
    "UNION ALL",
    "EXCEPT",
    "INTERSECT",
    "WITH",
    "INSERT INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE FROM",
    "CREATE TABLE",
    "CREATE VIEW",
    "DROP TABLE",
    "DROP VIEW",
    "COPY",
    "TO",
    "EXPLAIN",
    "EXPLAIN ANALYZE",
    "DESCRIBE",
    "SHOW TABLES",
    "SHOW COLUMNS FROM",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CAST",
    "TRUE",
    "FALSE",
    "NULL",
    "PRIMARY KEY",
    "IF EXISTS",
    "IF NOT EXISTS",
    "ASC",
    "DESC",
    "NULLS FIRST",
    "NULLS LAST",
];

const META: &[&str] = &[
    "\\d",
    "\\dt",
    "\\backends",
    "\\kinds",
    "\\attach",
    "\\detach",
    "\\format",
    "\\x",
    "\\timing",
    "\\maxrows",
    "\\pager",
    "\\i",
    "\\o",
    "\\q",
    "\\?",
];

/// The names completion offers, refreshed from the catalog after each statement.
#[derive(Default)]
struct Words {
    backends: Vec<String>,
    /// Bare names (default backend) and `backend.table`.
    tables: Vec<String>,
    columns: Vec<String>,
}

struct DkHelper {
    words: Arc<RwLock<Words>>,
}

impl Completer for DkHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.' || *c == '\\'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((start, vec![]));
        }
        let pair = |s: &str| Pair {
            display: s.to_string(),
            replacement: s.to_string(),
        };
        let mut out: Vec<Pair> = Vec::new();
        if word.starts_with('\\') {
            out.extend(META.iter().filter(|m| m.starts_with(word)).map(|m| pair(m)));
            return Ok((start, out));
        }
        let lower = word.to_lowercase();
        let words = self.words.read();
        for name in words
            .tables
            .iter()
            .chain(&words.backends)
            .chain(&words.columns)
        {
            if name.to_lowercase().starts_with(&lower)
                && !out.iter().any(|p| &p.replacement == name)
            {
                out.push(pair(name));
            }
        }
        let lowercase_typed = word.chars().any(|c| c.is_lowercase());
        for k in KEYWORDS {
            if k.to_lowercase().starts_with(&lower) {
                out.push(pair(&if lowercase_typed {
                    k.to_lowercase()
                } else {
                    k.to_string()
                }));
            }
        }
        Ok((start, out))
    }
}

impl Hinter for DkHelper {
    type Hint = String;
}

impl Highlighter for DkHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for DkHelper {}

impl Helper for DkHelper {}

/// Reads the catalog's names for completion (columns of at most 200 tables, for at most a
/// second: a slow backend only makes completion poorer).
async fn refresh(session: &Session, words: &RwLock<Words>) {
    let engine = &session.engine;
    let default = engine.default_backend();
    let mut fresh = Words {
        backends: engine.backends().into_iter().map(|(n, _)| n).collect(),
        ..Default::default()
    };
    let mut qualified = Vec::new();
    if let Ok(batch) = engine.list_tables(None).await
        && let Ok(rows) = super::print::text_rows(&[batch])
    {
        for r in rows {
            if let [backend, _schema, name, _] = r.as_slice() {
                if *backend == default {
                    fresh.tables.push(name.clone());
                }
                fresh.tables.push(format!("{backend}.{name}"));
                qualified.push(format!("{backend}.{name}"));
            }
        }
    }
    let columns = async {
        let mut cols = Vec::new();
        for t in qualified.iter().take(200) {
            if let Ok(b) = engine.describe(t).await
                && let Ok(rows) = super::print::text_rows(&[b])
            {
                cols.extend(rows.into_iter().filter_map(|r| r.into_iter().next()));
            }
        }
        cols
    };
    if let Ok(mut cols) = tokio::time::timeout(Duration::from_secs(1), columns).await {
        cols.sort();
        cols.dedup();
        fresh.columns = cols;
    }
    *words.write() = fresh;
}

/// A history entry with any URL password hidden (`\attach pg postgres://u:***@h/db`).
fn history_entry(entry: &str) -> String {
    entry
        .split(' ')
        .map(|w| {
            if w.contains("://") && w.contains('@') {
                crate::config::redact_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the prompt until `\q`, `quit` or Ctrl-D.
pub async fn run(session: &mut Session) -> Result<()> {
    let config = rustyline::Config::builder()
        .history_ignore_space(true)
        .max_history_size(10_000)
        .map_err(|e| Error::internal(format!("line editor settings: {e}")))?
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut rl: Editor<DkHelper, FileHistory> = Editor::with_config(config)
        .map_err(|e| Error::internal(format!("cannot start the line editor: {e}")))?;
    let words = Arc::new(RwLock::new(Words::default()));
    rl.set_helper(Some(DkHelper {
        words: words.clone(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.load_history(h);
    }
    if !session.quiet {
        println!(
            "dataknobs {} — type \\? for help, \\q to quit",
            env!("CARGO_PKG_VERSION")
        );
    }
    refresh(session, &words).await;
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
                let meta = buffer.trim().is_empty() && trimmed.starts_with('\\');
                if buffer.trim().is_empty() && matches!(trimmed, "quit" | "exit") {
                    break;
                }
                if !meta {
                    if !buffer.is_empty() {
                        buffer.push('\n');
                    }
                    buffer.push_str(&line);
                    if !is_complete(&buffer) {
                        continue;
                    }
                }
                let entry = if meta {
                    trimmed.to_string()
                } else {
                    std::mem::take(&mut buffer)
                };
                if let Some(h) = &history
                    && rl.add_history_entry(history_entry(&entry)).unwrap_or(false)
                {
                    let _ = rl.append_history(h);
                }
                let outcome = session.run_script(&entry, &Source::Prompt).await;
                if outcome == Outcome::Quit {
                    break;
                }
                refresh(session, &words).await;
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::internal(format!("reading input: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_after_multibyte_characters() {
        let helper = DkHelper {
            words: Arc::new(RwLock::new(Words {
                tables: vec!["xtab".into()],
                ..Default::default()
            })),
        };
        let history = rustyline::history::DefaultHistory::new();
        let ctx = Context::new(&history);
        for line in ["select '€x", "select\u{a0}x", "€x"] {
            let (start, found) = helper.complete(line, line.len(), &ctx).unwrap();
            assert_eq!(&line[start..], "x", "{line}");
            assert!(found.iter().any(|p| p.replacement == "xtab"), "{line}");
        }
    }

    #[test]
    fn history_hides_passwords() {
        assert_eq!(
            history_entry("\\attach pg postgres://u:secret@h/db"),
            "\\attach pg postgres://u:***@h/db"
        );
        assert_eq!(history_entry("select 1;"), "select 1;");
    }
}
