//! The config file: TOML (or YAML) naming backends and their settings, with `${VAR}` (an environment
//! variable; an error when unset), `${VAR:default}` and `${section.key}` (another value of
//! the same file) substituted in every string.
//!
//! ```toml
//! default = "pg"                       # the backend unqualified table names refer to
//!
//! [vars]                               # free values for ${vars.…}
//! host = "${PG_HOST:localhost}"
//!
//! [backends.pg]
//! url = "postgres://app@${vars.host}:5432/shop"
//! password = "${PG_PASSWORD}"          # put into the URL, never printed
//! pool_size = 8                        # any other key: an option of that backend
//!
//! [backends.lake]
//! kind = "file"                        # or a url
//! path = "/data/lake"
//! ```
//!
//! The same in YAML when the file name ends in `.yaml` or `.yml` (`backends:` a map of
//! backends, each a map of settings).
//!
//! Found at `--config FILE`, else `$DATAKNOBS_CONFIG`, else
//! `$XDG_CONFIG_HOME/dataknobs/config.toml` (default `~/.config/dataknobs/config.toml`; or
//! `config.yaml`/`config.yml` there) when that file exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// Keys whose values are secrets: never shown, and a warning when written literally in a
/// file others can read.
const SECRET_KEYS: &[&str] = &["password", "secret", "api_key", "token", "secret_key"];

/// One backend of the config file.
#[derive(Clone)]
pub struct BackendEntry {
    pub name: String,
    /// The settings, substituted, as text (`url`, `kind`, `password`, options …).
    pub settings: BTreeMap<String, String>,
}

impl std::fmt::Debug for BackendEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, String> = self
            .settings
            .iter()
            .map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k.as_str()) {
                    "***".to_string()
                } else {
                    super::redact_url(v)
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("BackendEntry")
            .field("name", &self.name)
            .field("settings", &shown)
            .finish()
    }
}

/// A loaded config file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: String,
    pub default: Option<String>,
    pub backends: Vec<BackendEntry>,
    warnings: Vec<String>,
}

fn config_error(path: &str, m: impl std::fmt::Display) -> Error {
    Error::config(format!("config file '{path}': {m}"))
}

impl ConfigFile {
    /// The config file named by `--config`, `$DATAKNOBS_CONFIG` or the XDG config folder
    /// (only that one may be absent).
    pub fn find(explicit: Option<&Path>) -> Result<Option<ConfigFile>> {
        if let Some(p) = explicit {
            return Self::load(p).map(Some);
        }
        if let Some(p) = std::env::var_os("DATAKNOBS_CONFIG").filter(|p| !p.is_empty()) {
            return Self::load(Path::new(&p)).map(Some);
        }
        let dir = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        let Some(dir) = dir.map(|d| d.join("dataknobs")) else {
            return Ok(None);
        };
        for name in ["config.toml", "config.yaml", "config.yml"] {
            let p = dir.join(name);
            if p.is_file() {
                return Self::load(&p).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads and checks a config file; environment variables come from the process.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(
                format!("cannot read config file '{label}'; check --config or DATAKNOBS_CONFIG"),
                e,
            )
        })?;
        let doc = parse_doc(&text, &label)?;
        let mut config = Self::from_doc(&doc, &label, &|v| std::env::var(v).ok())?;
        config.check_permissions(path, &doc);
        Ok(config)
    }

    /// Parses config text: YAML when `label` (the file name) ends in `.yaml` or `.yml`, TOML
    /// otherwise; `env` looks up environment variables.
    pub fn parse(
        text: &str,
        label: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConfigFile> {
        Self::from_doc(&parse_doc(text, label)?, label, env)
    }

    fn from_doc(
        doc: &toml::Table,
        label: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConfigFile> {
        for key in doc.keys() {
            if !matches!(key.as_str(), "default" | "backends" | "vars") {
                return Err(config_error(
                    label,
                    format!("unknown key '{key}'; known: default, backends, vars"),
                ));
            }
        }
        let resolver = Resolver { doc, env, label };
        let default = match doc.get("default") {
            None => None,
            Some(v) => Some(resolver.value(v, "default", 0)?),
        };
        let mut backends = Vec::new();
        if let Some(b) = doc.get("backends") {
            let table = b.as_table().ok_or_else(|| {
                config_error(label, "'backends' must be a table: [backends.NAME]")
            })?;
            for (name, entry) in table {
                let entry = entry.as_table().ok_or_else(|| {
                    config_error(
                        label,
                        format!("[backends.{name}] must be a table of settings (url = \"…\")"),
                    )
                })?;
                let mut settings = BTreeMap::new();
                for (k, v) in entry {
                    let value = resolver.value(v, &format!("backends.{name}.{k}"), 0)?;
                    settings.insert(k.clone(), value);
                }
                if !settings.contains_key("url") && !settings.contains_key("kind") {
                    return Err(config_error(
                        label,
                        format!(
                            "[backends.{name}] needs a url (e.g. url = \"postgres://user@host/db\") \
                             or a kind (e.g. kind = \"file\", path = \"/data\")"
                        ),
                    ));
                }
                backends.push(BackendEntry {
                    name: name.clone(),
                    settings,
                });
            }
        }
        Ok(ConfigFile {
            path: label.to_string(),
            default,
            backends,
            warnings: Vec::new(),
        })
    }

    /// Warnings to show (a literal secret in a file others can read).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn check_permissions(&mut self, path: &Path, doc: &toml::Table) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.permissions().mode() & 0o044 == 0 {
            return;
        }
        let literal = literal_secrets(doc);
        if !literal.is_empty() {
            self.warnings.push(format!(
                "config file '{}' holds a literal secret ({}) and other users can read it; \
                 run chmod 600 on it, or write the secret as ${{ENV_VAR}}",
                self.path,
                literal.join(", ")
            ));
        }
    }

    /// Attaches every backend, then makes `default` the default.
    pub async fn attach_to(&self, engine: &Engine) -> Result<()> {
        for b in &self.backends {
            let backend = engine
                .factory()
                .create_from(&b.settings)
                .await
                .map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!(
                            "config file '{}', backend '{}': {}",
                            self.path,
                            b.name,
                            e.message()
                        ),
                    )
                })?;
            engine.attach_backend(&b.name, backend)?;
        }
        if let Some(d) = &self.default {
            engine.set_default_backend(d).map_err(|e| {
                config_error(&self.path, format!("default = \"{d}\": {}", e.message()))
            })?;
        }
        Ok(())
    }
}

/// A config file's text as a table: YAML for a `.yaml`/`.yml` file, TOML otherwise.
fn parse_doc(text: &str, label: &str) -> Result<toml::Table> {
    let lower = label.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        // YAML maps onto the same tree (no nulls: a setting with no value is an error).
        return serde_saphyr::from_str::<toml::Table>(text).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            config_error(label, format!("not valid YAML: {first}"))
        });
    }
    text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        config_error(
            label,
            format!(
                "{at}{}",
                e.message().split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        )
    })
}

/// The secret settings written as literal text (not `${…}`), by key path.
fn literal_secrets(doc: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(toml::Value::Table(backends)) = doc.get("backends") {
        for (name, entry) in backends {
            let Some(entry) = entry.as_table() else {
                continue;
            };
            for (k, v) in entry {
                let Some(s) = v.as_str() else { continue };
                let secret_key =
                    SECRET_KEYS.contains(&k.as_str()) && !s.trim_start().starts_with("${");
                let secret_url = k == "url"
                    && url::Url::parse(s)
                        .ok()
                        .and_then(|u| {
                            u.password()
                                .map(|p| !p.starts_with("$%7B") && !p.starts_with("${"))
                        })
                        .unwrap_or(false);
                if secret_key || secret_url {
                    out.push(format!("[backends.{name}] {k}"));
                }
            }
        }
    }
    out
}

struct Resolver<'a> {
    doc: &'a toml::Table,
    env: &'a dyn Fn(&str) -> Option<String>,
    label: &'a str,
}

impl Resolver<'_> {
    /// A setting's value as text, substituted (`depth` guards cross-reference loops).
    fn value(&self, v: &toml::Value, at: &str, depth: usize) -> Result<String> {
        match v {
            toml::Value::String(s) => self.substitute(s, at, depth),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::Datetime(d) => Ok(d.to_string()),
            _ => Err(config_error(
                self.label,
                format!("{at}: a setting is text, a number or true/false, not a list or table"),
            )),
        }
    }

    fn lookup(&self, path: &str) -> Option<&toml::Value> {
        let mut parts = path.split('.');
        let mut cur = self.doc.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_table()?.get(p)?;
        }
        Some(cur)
    }

    fn substitute(&self, s: &str, at: &str, depth: usize) -> Result<String> {
        if depth > 16 {
            return Err(config_error(
                self.label,
                format!("{at}: ${{…}} references loop (or nest more than 16 deep)"),
            ));
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("$$") {
                out.push('$');
                rest = t;
                continue;
            }
            let Some(body) = tail.strip_prefix("${") else {
                out.push('$');
                rest = &tail[1..];
                continue;
            };
            let end = body.find('}').ok_or_else(|| {
                config_error(
                    self.label,
                    format!("{at}: '${{' without its '}}' (write $$ for a literal $)"),
                )
            })?;
            let inner = &body[..end];
            rest = &body[end + 1..];
            let (name, default) = match inner.split_once(':') {
                Some((n, d)) => (n.trim(), Some(d)),
                None => (inner.trim(), None),
            };
            if name.is_empty() {
                return Err(config_error(self.label, format!("{at}: an empty ${{}}")));
            }
            let value = if name.contains('.') {
                match self.lookup(name) {
                    Some(v) => self.value(v, name, depth + 1)?,
                    None => match default {
                        Some(d) => d.to_string(),
                        None => {
                            return Err(config_error(
                                self.label,
                                format!("{at}: ${{{name}}} names no setting of this file"),
                            ));
                        }
                    },
                }
            } else {
                match (self.env)(name) {
                    Some(v) => v,
                    None => match default {
                        Some(d) => d.to_string(),
                        None => {
                            return Err(config_error(
                                self.label,
                                format!(
                                    "{at}: environment variable {name} is not set; set it, or \
                                     give a default as ${{{name}:default}}"
                                ),
                            ));
                        }
                    },
                }
            };
            out.push_str(&value);
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PG_PASSWORD" => Some("s3cret".into()),
            "PG_HOST" => Some("db.internal".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_variables_defaults_and_references() {
        let c = ConfigFile::parse(
            r#"
default = "pg"
[vars]
port = 5433
[backends.pg]
url = "postgres://app@${PG_HOST:localhost}:${vars.port}/shop"
password = "${PG_PASSWORD}"
pool_size = 8
user_name = "${NOPE:anon}"
price = "$$5"
[backends.lake]
kind = "file"
path = "${backends.pg.user_name}/lake"
"#,
            "t.toml",
            &env,
        )
        .unwrap();
        assert_eq!(c.default.as_deref(), Some("pg"));
        let pg = c.backends.iter().find(|b| b.name == "pg").unwrap();
        assert_eq!(pg.settings["url"], "postgres://app@db.internal:5433/shop");
        assert_eq!(pg.settings["password"], "s3cret");
        assert_eq!(pg.settings["pool_size"], "8");
        assert_eq!(pg.settings["user_name"], "anon");
        assert_eq!(pg.settings["price"], "$5");
        let lake = c.backends.iter().find(|b| b.name == "lake").unwrap();
        assert_eq!(lake.settings["path"], "anon/lake");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn errors_say_where_and_what_to_do() {
        let e = ConfigFile::parse(
            "[backends.pg]\nurl = \"postgres://h/db\"\npassword = \"${MISSING}\"\n",
            "t.toml",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'t.toml'")
                && e.contains("backends.pg.password")
                && e.contains("MISSING is not set"),
            "{e}"
        );
        let e = ConfigFile::parse("[backends.pg\nurl = 1", "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'t.toml': line 1"), "{e}");
        let e = ConfigFile::parse("[backends.x]\nurl = \"${a.b}\"\n", "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("names no setting"), "{e}");
        let e = ConfigFile::parse(
            "[vars]\na = \"${vars.b}\"\nb = \"${vars.a}\"\n[backends.x]\nurl = \"${vars.a}\"\n",
            "t.toml",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("loop"), "{e}");
        let e = ConfigFile::parse("[backends.x]\npath = \"/d\"\n", "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a url"), "{e}");
        let e = ConfigFile::parse("defualt = \"x\"\n", "t.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key 'defualt'"), "{e}");
    }

    #[test]
    fn yaml_files_say_the_same() {
        let c = ConfigFile::parse(
            "default: pg\nvars:\n  port: 5433\nbackends:\n  pg:\n    \
             url: postgres://app@${PG_HOST:localhost}:${vars.port}/shop\n    \
             password: ${PG_PASSWORD}\n    pool_size: 8\n    ssl: true\n",
            "dataknobs.yaml",
            &env,
        )
        .unwrap();
        assert_eq!(c.default.as_deref(), Some("pg"));
        let pg = &c.backends[0];
        assert_eq!(pg.settings["url"], "postgres://app@db.internal:5433/shop");
        assert_eq!(pg.settings["password"], "s3cret");
        assert_eq!(pg.settings["pool_size"], "8");
        assert_eq!(pg.settings["ssl"], "true");
        let e = ConfigFile::parse("backends:\n  pg: [unclosed\n", "c.yml", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config file 'c.yml': not valid YAML: line 2 column 7"),
            "{e}"
        );
        // The same text as TOML is a TOML error.
        assert!(ConfigFile::parse("default: pg\n", "c.toml", &env).is_err());
    }

    #[test]
    fn literal_secrets_are_found() {
        let found = literal_secrets(
            &parse_doc(
                "[backends.a]\npassword = \"hunter2\"\n[backends.b]\npassword = \"${P}\"\n\
                 [backends.c]\nurl = \"postgres://u:pw@h/db\"\n[backends.d]\nurl = \"postgres://u@h/db\"\n",
                "t.toml",
            )
            .unwrap(),
        );
        assert_eq!(found, vec!["[backends.a] password", "[backends.c] url"]);
    }
}
