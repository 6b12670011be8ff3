//! Errors: one public [`Error`] type that says what failed, in which backend, and keeps the
//! source. Callers match on [`ErrorKind`] (as with sqlx) instead of parsing messages.

use std::fmt;

/// The kind of failure, for callers that want to react to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A record, collection or table does not exist.
    NotFound,
    /// A record with that id (or a collection with that name) exists already.
    AlreadyExists,
    /// The backend could not be reached, or the connection broke.
    Connection,
    /// A query or statement was invalid or failed while running.
    Query,
    /// A value had the wrong type, or could not be converted.
    Type,
    /// The configuration (URL, option, config file) is invalid.
    Config,
    /// The backend is not compiled in or not registered.
    BackendUnavailable,
    /// The backend does not offer this capability.
    Unsupported,
    /// Reading or writing a local file failed.
    Io,
    /// A bug in dataknobs: please report it.
    Internal,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Connection => "connection error",
            ErrorKind::Query => "query error",
            ErrorKind::Type => "type error",
            ErrorKind::Config => "configuration error",
            ErrorKind::BackendUnavailable => "backend unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "i/o error",
            ErrorKind::Internal => "internal error",
        }
    }
}

/// The error type of every dataknobs API.
///
/// Its `Display` is one line: `<backend>: <kind>: <message>[: <source>]`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Error {
    kind: ErrorKind,
    backend: Option<String>,
    /// The backend's own error code, e.g. PostgreSQL's SQLSTATE (`23505`).
    code: Option<String>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message saying what failed and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            backend: None,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// Names the backend (e.g. `memory`, `postgres`) the error came from.
    pub fn with_backend(mut self, backend: impl Into<String>) -> Self {
        if self.backend.is_none() {
            self.backend = Some(backend.into());
        }
        self
    }

    /// Records the backend's own error code (PostgreSQL's SQLSTATE).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The backend's own error code, if it gave one: PostgreSQL's SQLSTATE (e.g. `23505` for
    /// a unique violation, `42P01` for an undefined table).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Keeps the underlying error.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The backend that failed, if known.
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    /// The same error with its message rewritten by `f`.
    pub(crate) fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    /// The message, without backend and kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand constructors.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn already_exists(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, m)
    }
    pub fn query(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Query, m)
    }
    pub fn type_error(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Type, m)
    }
    pub fn config(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, m)
    }
    pub fn unsupported(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, m)
    }
    pub fn io(m: impl Into<String>, e: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, m).with_source(e)
    }

    /// Converts into a DataFusion error that keeps this error inside, so that
    /// [`Error::from_datafusion`] can recover it unchanged.
    pub fn into_datafusion(self) -> datafusion::error::DataFusionError {
        datafusion::error::DataFusionError::External(Box::new(self))
    }

    /// Recovers a dataknobs error wrapped in a DataFusion error, or classifies a DataFusion error.
    pub fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            D::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::query(one_line(&other.to_string())).with_source(other),
            },
            // The rule that failed is an implementation detail; its cause is the user's error
            // (`SELECT 'abc'::int` fails while constant-folding the cast).
            D::Context(ctx, inner) if ctx.starts_with("Optimizer rule") => {
                Self::from_datafusion(*inner)
            }
            D::Diagnostic(_, inner) => Self::from_datafusion(*inner),
            D::Context(ctx, inner) => {
                let mut err = Self::from_datafusion(*inner);
                err.message = format!("{ctx}: {}", err.message);
                err
            }
            D::Shared(shared) => Error::query(shared.to_string()),
            D::ArrowError(inner, _) => {
                if let arrow::error::ArrowError::ExternalError(ext) = *inner {
                    match ext.downcast::<Error>() {
                        Ok(ours) => *ours,
                        Err(other) => Error::query(one_line(&other.to_string())).with_source(other),
                    }
                } else {
                    Error::query(one_line(&inner.to_string())).with_source(*inner)
                }
            }
            D::IoError(io) => Error::new(ErrorKind::Io, io.to_string()).with_source(io),
            D::NotImplemented(m) => Error::unsupported(one_line(&m)),
            D::SQL(e, _) => Error::query(format!("syntax error: {}", parser_message(&e))),
            D::Plan(m) | D::Execution(m) => Error::query(one_line(&m)),
            other => {
                let text = other.strip_backtrace();
                Error::query(one_line(&text)).with_source(other)
            }
        }
    }
}

use datafusion::arrow;

/// A parser error's own words, with its position as `at line L, column C` (the parser's
/// `Debug`-like `ParserError("…")` wrapper and `Line: L, Column: C` capitals dropped).
fn parser_message(e: &datafusion::sql::sqlparser::parser::ParserError) -> String {
    use datafusion::sql::sqlparser::parser::ParserError as P;
    let text = match e {
        P::TokenizerError(m) | P::ParserError(m) => m.clone(),
        P::RecursionLimitExceeded => "expression nested too deeply".to_string(),
    };
    one_line(
        &text
            .replace(" at Line: ", " at line ")
            .replace(", Column: ", ", column "),
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = &self.backend {
            write!(f, "{b}: ")?;
        }
        write!(f, "{}: {}", self.kind.label(), self.message)?;
        // An error with a backend code already carries the server's words in its message.
        if let Some(s) = self.source.as_ref().filter(|_| self.code.is_none()) {
            let s = one_line(&s.to_string());
            if !self.message.contains(&s) {
                write!(f, ": {s}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::from_datafusion(e)
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::from_datafusion(datafusion::error::DataFusionError::ArrowError(
            Box::new(e),
            None,
        ))
    }
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        e.into_datafusion()
    }
}
