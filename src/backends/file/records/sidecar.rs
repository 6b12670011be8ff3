//! The schema sidecar of a text file (`.<file name>.schema.json`): the columns
//! ([`crate::store::columns`]), the format, the NULL marker, and the length and CRC-32 of the
//! data file it describes. Written after the data file in the same locked section; read
//! before a text file is parsed, and ignored (with a warning) when unreadable.

use std::fs;

use datafusion::arrow::datatypes::{Field as ArrowField, Schema};
use serde::{Deserialize, Serialize};

use super::SIDECAR_VERSION;
use super::format::Format;
use super::lock::Shared;
use crate::store::columns::{self, ColumnDesc};

/// The schema sidecar of a text file: `.<file name>.schema.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Sidecar {
    pub(super) version: u32,
    pub(super) format: String,
    /// Length and CRC-32 of the data file (as stored, compressed) this describes.
    pub(super) data_len: u64,
    pub(super) data_crc32: u32,
    pub(super) columns: Vec<ColumnDesc>,
    /// How NULL is written in CSV/TSV files we wrote (`\N`), so an empty field is an empty
    /// string. Absent for other formats and files written before this was recorded.
    #[serde(default)]
    pub(super) null: Option<String>,
    /// Every CSV/TSV field is quoted (a file another program wrote so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) quote_all: bool,
}

pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

impl Sidecar {
    pub(super) fn describe(
        format: Format,
        schema: &Schema,
        key: Option<&str>,
        data: &[u8],
        style: &super::TextStyle,
    ) -> Sidecar {
        let text = matches!(format, Format::Csv | Format::Tsv);
        Sidecar {
            version: SIDECAR_VERSION,
            format: format.to_string(),
            data_len: data.len() as u64,
            data_crc32: crc32(data),
            null: style.null.clone().filter(|_| text),
            quote_all: style.quote_all && text,
            columns: columns::describe(schema, key),
        }
    }

    pub(super) fn matches(&self, raw: &[u8]) -> bool {
        self.data_len == raw.len() as u64 && self.data_crc32 == crc32(raw)
    }

    /// The columns as Arrow fields; None (with a warning) if the sidecar is unusable.
    pub(super) fn fields(&self) -> Option<Vec<ArrowField>> {
        columns::fields(&self.columns)
            .map_err(|e| tracing::warn!("file backend: ignoring a schema file: {e}"))
            .ok()
    }
}

impl Shared {
    pub(super) fn read_sidecar(&self) -> Option<Sidecar> {
        let bytes = match fs::read(&self.sidecar_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "file backend: ignoring {}: {e}",
                    self.sidecar_path.display()
                );
                return None;
            }
        };
        parse_sidecar(&bytes, &self.sidecar_path.display().to_string())
    }
}

/// A schema sidecar from its bytes; None (with a warning naming `shown`) when it is not one
/// this version reads.
pub(super) fn parse_sidecar(bytes: &[u8], shown: &str) -> Option<Sidecar> {
    match serde_json::from_slice::<Sidecar>(bytes) {
        Ok(s) if s.version == SIDECAR_VERSION => Some(s),
        Ok(s) => {
            tracing::warn!(
                "ignoring the schema file {shown}: unknown version {}",
                s.version
            );
            None
        }
        Err(e) => {
            tracing::warn!("ignoring the schema file {shown}: {e}");
            None
        }
    }
}
