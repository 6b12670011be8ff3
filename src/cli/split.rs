//! Statement boundaries in SQL text, found with the SQL tokenizer DataFusion parses with
//! (sqlparser, generic dialect): a `;` ends a statement only where the tokenizer sees one, so
//! quotes (`'…'`, `E'…'`, `"…"`, `$$…$$`) and comments never split a statement.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

fn tokens(sql: &str) -> Option<Vec<TokenWithSpan>> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()
}

fn is_code(t: &Token) -> bool {
    !matches!(t, Token::Whitespace(_) | Token::EOF)
}

/// The byte offset of a 1-based (line, column) position, columns counted in characters.
fn offset(line_starts: &[usize], sql: &str, line: u64, column: u64) -> usize {
    let start = line
        .checked_sub(1)
        .and_then(|l| line_starts.get(l as usize))
        .copied()
        .unwrap_or(sql.len());
    sql[start..]
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map_or(sql.len(), |(i, _)| start + i)
}

/// Splits a SQL script into statements at each `;` the tokenizer sees. Statements holding
/// only whitespace and comments are dropped. Text the tokenizer cannot read (an unterminated
/// quote or comment) stays one statement, so that running it reports the error.
pub fn split_statements(sql: &str) -> Vec<String> {
    split_located(sql).into_iter().map(|(s, _)| s).collect()
}

/// Like [`split_statements`], with the 0-based line of `sql` each statement's text starts on.
pub fn split_located(sql: &str) -> Vec<(String, usize)> {
    let located = |from: usize, to: usize| {
        let piece = &sql[from..to];
        let lead = piece.len() - piece.trim_start().len();
        let line = sql[..from + lead].matches('\n').count();
        (piece.trim().to_string(), line)
    };
    let Some(tokens) = tokens(sql) else {
        return if sql.trim().is_empty() {
            vec![]
        } else {
            vec![located(0, sql.len())]
        };
    };
    let mut line_starts = vec![0];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let mut out = Vec::new();
    // Where the statement's first code token is (comments before it are dropped, so that
    // the statement's line is the line its code starts on).
    let mut code_at: Option<usize> = None;
    for t in &tokens {
        if t.token == Token::SemiColon {
            let at = offset(&line_starts, sql, t.span.start.line, t.span.start.column);
            if let Some(from) = code_at {
                out.push(located(from, at));
            }
            code_at = None;
        } else if is_code(&t.token) && code_at.is_none() {
            code_at = Some(offset(
                &line_starts,
                sql,
                t.span.start.line,
                t.span.start.column,
            ));
        }
    }
    if let Some(from) = code_at {
        out.push(located(from, sql.len()));
    }
    out
}

/// One piece of a script: a meta command (a line starting with `\` where a statement could
/// start, as in psql) or a SQL statement; `line` is the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Meta { line: usize, text: String },
    Sql { line: usize, text: String },
}

/// Splits a script into meta commands and statements, in order. A last statement without
/// its `;` is kept (it runs, as in psql's `-f`).
pub fn split_script(script: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut buf_line = 1;
    let flush = |buf: &str, first_line: usize, out: &mut Vec<Piece>| {
        for (text, l) in split_located(buf) {
            out.push(Piece::Sql {
                line: first_line + l,
                text,
            });
        }
    };
    for (i, line) in script.lines().enumerate() {
        let no = i + 1;
        // A meta line where a statement could start: after nothing but comments, or after a
        // complete statement (one ended by a line without ';', e.g. a closing comment).
        if line.trim_start().starts_with('\\') && (!has_code(&buf) || is_complete(&buf)) {
            flush(&buf, buf_line, &mut out);
            buf.clear();
            out.push(Piece::Meta {
                line: no,
                text: line.trim().to_string(),
            });
            continue;
        }
        if buf.is_empty() {
            buf_line = no;
        }
        buf.push_str(line);
        buf.push('\n');
        if line.contains(';') && is_complete(&buf) {
            flush(&buf, buf_line, &mut out);
            buf.clear();
        }
    }
    flush(&buf, buf_line, &mut out);
    out
}

/// Does the text hold anything but whitespace and comments? (Unreadable text counts as code:
/// running it reports the error.)
pub fn has_code(sql: &str) -> bool {
    if sql.trim().is_empty() {
        return false;
    }
    tokens(sql).is_none_or(|t| t.iter().any(|t| is_code(&t.token)))
}

/// Is the text complete: its last token (comments aside) a `;` outside any quote or
/// comment? The prompt reads lines until it is.
pub fn is_complete(sql: &str) -> bool {
    tokens(sql).is_some_and(|t| {
        t.iter()
            .rev()
            .find(|t| is_code(&t.token))
            .is_some_and(|t| t.token == Token::SemiColon)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let s = split_statements("select ';' as a; -- x;\nselect \"b;\" from t /* ; */;\n\n;");
        assert_eq!(s, vec!["select ';' as a", "select \"b;\" from t /* ; */"]);
        assert!(is_complete("select 1;"));
        assert!(!is_complete("select ';"));
        assert!(!is_complete("select 1"));
        assert!(is_complete("select 1; -- done"));
        assert!(!is_complete("select 1 /* ; */"));
        assert_eq!(split_statements("select 1; /* end */"), vec!["select 1"]);
        assert_eq!(
            split_statements("select E'x\\';y'; select 2"),
            vec!["select E'x\\';y'", "select 2"]
        );
        assert!(!is_complete("select E'x\\';"));
        assert!(is_complete("select E'x\\';y';"));
        assert!(is_complete("select 'a''b';"));
    }

    #[test]
    fn scripts_mix_meta_commands_and_statements_with_their_lines() {
        let script = "-- setup\n\\timing on\nselect 1;\n\nselect\n  2; select 3;\n\\d t\nselect 'a\n\\b';\nselect 4";
        assert_eq!(
            split_script(script),
            vec![
                Piece::Meta {
                    line: 2,
                    text: "\\timing on".into()
                },
                Piece::Sql {
                    line: 3,
                    text: "select 1".into()
                },
                Piece::Sql {
                    line: 5,
                    text: "select\n  2".into()
                },
                Piece::Sql {
                    line: 6,
                    text: "select 3".into()
                },
                Piece::Meta {
                    line: 7,
                    text: "\\d t".into()
                },
                Piece::Sql {
                    line: 8,
                    text: "select 'a\n\\b'".into()
                },
                Piece::Sql {
                    line: 10,
                    text: "select 4".into()
                },
            ]
        );
        assert!(split_script("-- nothing\n\n").is_empty());
        // A statement completed on a line without ';' (a comment closes) still ends before
        // the next meta line.
        assert_eq!(
            split_script("select 1; /* note\nend */\n\\d t\nselect 2;"),
            vec![
                Piece::Sql {
                    line: 1,
                    text: "select 1".into()
                },
                Piece::Meta {
                    line: 3,
                    text: "\\d t".into()
                },
                Piece::Sql {
                    line: 4,
                    text: "select 2".into()
                },
            ]
        );
    }

    #[test]
    fn dollar_quotes_unicode_and_broken_text() {
        assert_eq!(
            split_statements("select $$a;b$$; select 'ü;ß' as \"ä;\"\n; select 3"),
            vec!["select $$a;b$$", "select 'ü;ß' as \"ä;\"", "select 3"]
        );
        assert_eq!(
            split_statements("select 'open; select 2"),
            vec!["select 'open; select 2"]
        );
        assert!(split_statements("  -- only a comment\n").is_empty());
        assert!(!is_complete("select 'open;"));
    }
}
