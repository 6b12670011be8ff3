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
    let Some(tokens) = tokens(sql) else {
        return if sql.trim().is_empty() {
            vec![]
        } else {
            vec![sql.trim().to_string()]
        };
    };
    let mut line_starts = vec![0];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let mut out = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    for t in &tokens {
        if t.token == Token::SemiColon {
            let at = offset(&line_starts, sql, t.span.start.line, t.span.start.column);
            if has_code {
                out.push(sql[start..at].trim().to_string());
            }
            start = (at + 1).min(sql.len());
            has_code = false;
        } else if is_code(&t.token) {
            has_code = true;
        }
    }
    if has_code {
        out.push(sql[start..].trim().to_string());
    }
    out
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
        assert_eq!(
            s,
            vec!["select ';' as a", "-- x;\nselect \"b;\" from t /* ; */"]
        );
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
