//! File formats and compression, detected from file names or given as options.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A supported file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A JSON array of objects (`[{…}, {…}]`).
    Json,
    /// One JSON object per line.
    NdJson,
    /// Comma-separated values with a header line.
    Csv,
    /// Tab-separated values with a header line.
    Tsv,
    Parquet,
}

/// Compression of a text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::NdJson,
        Format::Csv,
        Format::Tsv,
        Format::Parquet,
    ];

    /// The canonical file extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::NdJson => "ndjson",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Parquet => "parquet",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "ndjson" | "jsonl" | "jsonlines" => Ok(Format::NdJson),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "parquet" | "pq" => Ok(Format::Parquet),
            other => Err(Error::config(format!(
                "unknown file format '{other}'; expected json, ndjson, csv, tsv or parquet"
            ))),
        }
    }
}

impl Compression {
    /// The extension suffix (`gz`, `zst`), if any.
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gz"),
            Compression::Zstd => Some("zst"),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "none" | "uncompressed" => Ok(Compression::None),
            "gz" | "gzip" => Ok(Compression::Gzip),
            "zst" | "zstd" => Ok(Compression::Zstd),
            other => Err(Error::config(format!(
                "unknown compression '{other}'; expected none, gzip or zstd"
            ))),
        }
    }
}

/// Detects format and compression from a file name (`orders.csv.gz` → CSV, gzip), and returns
/// the table name it implies (`orders`). None for files that are not data files.
pub fn detect(path: &Path) -> Option<(String, Format, Compression)> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') || name.starts_with('_') {
        return None;
    }
    let (rest, compression) = if let Some(r) = name.strip_suffix(".gz") {
        (r, Compression::Gzip)
    } else if let Some(r) = name.strip_suffix(".zst") {
        (r, Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    let (stem, ext) = rest.rsplit_once('.')?;
    let format: Format = ext.parse().ok()?;
    if format == Format::Parquet && compression != Compression::None {
        return None;
    }
    if stem.is_empty() {
        return None;
    }
    Some((stem.to_string(), format, compression))
}

/// The file name for a table stored as one file.
pub fn file_name(table: &str, format: Format, compression: Compression) -> String {
    match compression.extension() {
        Some(c) => format!("{table}.{}.{c}", format.extension()),
        None => format!("{table}.{}", format.extension()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_and_compression() {
        let d = |s: &str| detect(Path::new(s));
        assert_eq!(
            d("a/lineitem.parquet"),
            Some(("lineitem".into(), Format::Parquet, Compression::None))
        );
        assert_eq!(
            d("orders.csv.gz"),
            Some(("orders".into(), Format::Csv, Compression::Gzip))
        );
        assert_eq!(
            d("e.jsonl.zst"),
            Some(("e".into(), Format::NdJson, Compression::Zstd))
        );
        assert_eq!(
            d("x.tsv"),
            Some(("x".into(), Format::Tsv, Compression::None))
        );
        assert_eq!(d("notes.txt"), None);
        assert_eq!(d(".hidden.csv"), None);
        assert_eq!(d("x.parquet.gz"), None);
        assert_eq!(file_name("t", Format::Csv, Compression::Gzip), "t.csv.gz");
    }
}
