//! Backend URL options, declared once per backend kind ([`OptionSpec`]) and parsed by one
//! helper ([`UrlOptions::parse`]): an unknown option is an error listing the known ones, and
//! booleans, numbers, sizes and durations are parsed and checked here, before the backend
//! sees them. A secret option is never accepted in a URL query (it would end up in shell
//! history and logs); the backend reads it from its own place (the URL's password, an
//! environment variable).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::error::{Error, Result};

/// The type of an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OptionKind {
    /// `true`/`false` (also `on`/`off`, `1`/`0`, any case).
    Bool,
    /// A whole number within `min..=max`.
    Integer { min: u64, max: u64 },
    /// A byte size: a number with an optional unit (`512`, `64KiB`, `8MiB`, `1GiB`, `10MB`).
    Size,
    /// A duration: seconds (`30`) or a number with a unit (`250ms`, `30s`, `5m`, `1h`).
    Duration,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// Any text (a name, a path).
    Text,
}

impl OptionKind {
    fn describe(&self) -> String {
        match self {
            OptionKind::Bool => "true or false".into(),
            OptionKind::Integer { min, max } => format!("a whole number from {min} to {max}"),
            OptionKind::Size => "a size such as 512, 64KiB or 8MiB".into(),
            OptionKind::Duration => "a duration such as 30 (seconds), 250ms, 30s or 5m".into(),
            OptionKind::Choice(words) => format!("one of {}", words.join(", ")),
            OptionKind::Text => "text".into(),
        }
    }
}

/// One option a backend kind accepts in its URL query (`?name=value`).
#[derive(Debug, Clone, Serialize)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: OptionKind,
    pub required: bool,
    /// The value used when the option is absent, as it would be written.
    pub default: Option<&'static str>,
    /// A secret (password, key): refused in the URL query, never shown.
    pub secret: bool,
    pub doc: &'static str,
}

impl OptionSpec {
    /// An optional option without a default.
    pub const fn new(name: &'static str, kind: OptionKind, doc: &'static str) -> Self {
        OptionSpec {
            name,
            kind,
            required: false,
            default: None,
            secret: false,
            doc,
        }
    }

    /// The same option with a default value.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    /// The same option, marked secret.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The same option, marked required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// The URL query options of one backend, checked against its [`OptionSpec`]s.
#[derive(Debug, Clone)]
pub struct UrlOptions {
    backend: String,
    specs: Vec<OptionSpec>,
    values: BTreeMap<&'static str, String>,
}

impl UrlOptions {
    /// Reads `url`'s query: each option must be known, given once, not secret, and of its
    /// kind; required options must be present. Errors name the backend, the option and what
    /// it takes (never a secret's value).
    pub fn parse(backend: &str, url: &Url, specs: &[OptionSpec]) -> Result<Self> {
        let bad = |m: String| Error::config(m).with_backend(backend.to_string());
        let mut values = BTreeMap::new();
        for (k, v) in url.query_pairs() {
            let Some(spec) = specs.iter().find(|s| s.name == k) else {
                let known: Vec<&str> = specs.iter().filter(|s| !s.secret).map(|s| s.name).collect();
                return Err(bad(format!(
                    "unknown {backend} URL option '{k}'; known: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            if spec.secret {
                return Err(bad(format!(
                    "do not put the {} in the URL query; {}",
                    spec.name, spec.doc
                )));
            }
            if values.contains_key(spec.name) {
                return Err(bad(format!("option '{}' is given twice", spec.name)));
            }
            check(spec, &v).map_err(|why| {
                bad(format!(
                    "option '{}' takes {}, not '{v}'{why}",
                    spec.name,
                    spec.kind.describe()
                ))
            })?;
            values.insert(spec.name, v.into_owned());
        }
        for s in specs {
            if s.required && !values.contains_key(s.name) {
                return Err(bad(format!("option '{}' is required ({})", s.name, s.doc)));
            }
        }
        Ok(UrlOptions {
            backend: backend.to_string(),
            specs: specs.to_vec(),
            values,
        })
    }

    /// The raw value: the URL's, else the declared default.
    fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).or_else(|| {
            self.specs
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.default)
        })
    }

    /// Was the option given in the URL (not just defaulted)?
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    fn undeclared(&self, name: &str) -> Error {
        Error::internal(format!(
            "{} backend reads option '{name}', which it does not declare",
            self.backend
        ))
    }

    fn parsed<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        if !self.specs.iter().any(|s| s.name == name) {
            return Err(self.undeclared(name));
        }
        match self.raw(name) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).map_err(|why| {
                Error::config(format!("option '{name}': {why}")).with_backend(self.backend.clone())
            }),
        }
    }

    /// A text option.
    pub fn text(&self, name: &str) -> Result<Option<String>> {
        self.parsed(name, |v| Ok(v.to_string()))
    }

    /// A boolean option.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.parsed(name, parse_bool)
    }

    /// A whole-number option.
    pub fn integer(&self, name: &str) -> Result<Option<u64>> {
        self.parsed(name, |v| v.trim().parse::<u64>().map_err(|e| e.to_string()))
    }

    /// A size option, in bytes.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        self.parsed(name, parse_size)
    }

    /// A duration option.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>> {
        self.parsed(name, parse_duration)
    }
}

/// Checks a value against its option's kind; the error text (if any) follows the "takes …"
/// message.
fn check(spec: &OptionSpec, v: &str) -> std::result::Result<(), String> {
    match spec.kind {
        OptionKind::Bool => parse_bool(v).map(|_| ()).map_err(|_| String::new()),
        OptionKind::Integer { min, max } => match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(String::new()),
        },
        OptionKind::Size => parse_size(v).map(|_| ()).map_err(|_| String::new()),
        OptionKind::Duration => parse_duration(v).map(|_| ()).map_err(|_| String::new()),
        OptionKind::Choice(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(String::new())
            }
        }
        OptionKind::Text => Ok(()),
    }
}

/// `true`/`false`, `on`/`off`, `1`/`0`, any case.
pub fn parse_bool(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        other => Err(format!("'{other}' is not true or false")),
    }
}

/// A byte size: `512`, `64KiB`, `8MiB`, `1GiB` (binary), `10KB`, `10MB`, `1GB` (decimal).
pub fn parse_size(v: &str) -> std::result::Result<u64, String> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{v}' is not a size such as 512, 64KiB or 8MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit '{other}' in '{v}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{v}' is too large"))
}

/// A duration: plain seconds (`30`) or with a unit (`250ms`, `30s`, `5m`, `1h`).
pub fn parse_duration(v: &str) -> std::result::Result<Duration, String> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{v}' is not a duration such as 30, 250ms, 30s or 5m"))?;
    Ok(match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("unknown duration unit '{other}' in '{v}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::new("flag", OptionKind::Bool, "a flag").default("false"),
        OptionSpec::new("n", OptionKind::Integer { min: 2, max: 10 }, "a number"),
        OptionSpec::new("buf", OptionKind::Size, "a size").default("1MiB"),
        OptionSpec::new("wait", OptionKind::Duration, "a wait"),
        OptionSpec::new("mode", OptionKind::Choice(&["a", "b"]), "a mode"),
        OptionSpec::new(
            "password",
            OptionKind::Text,
            "use the URL's user:password part",
        )
        .secret(),
    ];

    fn parse(q: &str) -> Result<UrlOptions> {
        UrlOptions::parse("x", &Url::parse(&format!("x://h/?{q}")).unwrap(), SPECS)
    }

    #[test]
    fn typed_values_and_defaults() {
        let o = parse("flag=ON&n=3&wait=250ms&mode=b").unwrap();
        assert_eq!(o.bool("flag").unwrap(), Some(true));
        assert_eq!(o.integer("n").unwrap(), Some(3));
        assert_eq!(o.size("buf").unwrap(), Some(1 << 20));
        assert_eq!(
            o.duration("wait").unwrap(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(o.text("mode").unwrap().as_deref(), Some("b"));
        assert!(o.is_set("n") && !o.is_set("buf"));
        let o = parse("").unwrap();
        assert_eq!(o.bool("flag").unwrap(), Some(false));
        assert_eq!(o.integer("n").unwrap(), None);
        assert!(o.bool("undeclared").is_err());
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let e = parse("nope=1").unwrap_err().to_string();
        assert!(e.contains("unknown x URL option 'nope'"), "{e}");
        assert!(e.contains("known: flag, n, buf, wait, mode"), "{e}");
        assert!(
            !e.contains("password"),
            "secret options are not advertised: {e}"
        );
        let e = parse("n=11").unwrap_err().to_string();
        assert!(
            e.contains("'n' takes a whole number from 2 to 10, not '11'"),
            "{e}"
        );
        let e = parse("flag=maybe").unwrap_err().to_string();
        assert!(e.contains("takes true or false"), "{e}");
        let e = parse("mode=c").unwrap_err().to_string();
        assert!(e.contains("one of a, b"), "{e}");
        let e = parse("n=3&n=4").unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let e = parse("password=hunter2").unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("user:password"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("3 weeks").is_err());
    }
}
