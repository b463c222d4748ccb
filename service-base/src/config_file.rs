//! Loading TOML config files.
//!
//! Servers parse the raw file into serde types first and validate them into
//! high-level types second; both steps report errors through [`ConfigError`]
//! so the operator always learns which file and which field is wrong.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file could not be turned into a running configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("config {file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema; toml's
    /// message carries the line, column and key.
    #[error("config {file}: {message}")]
    Parse { file: PathBuf, message: String },
    /// The file parsed but a value is not acceptable.
    #[error("config {file}: field `{field}`: {reason}")]
    Invalid {
        file: PathBuf,
        field: String,
        reason: String,
    },
}

/// A validation failure before the file name is known; [`load`] attaches it.
#[derive(Debug, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Attaches the file the field came from.
    pub fn in_file(self, file: &Path) -> ConfigError {
        ConfigError::Invalid {
            file: file.to_path_buf(),
            field: self.field,
            reason: self.reason,
        }
    }
}

/// Reads `path` as TOML into `T`, then runs `validate` on it.
pub fn load<T, V>(
    path: &Path,
    validate: impl FnOnce(T) -> Result<V, FieldError>,
) -> Result<V, ConfigError>
where
    T: DeserializeOwned,
{
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, validate)
}

/// Parses `text` as if it were the content of `path`; used for embedded
/// defaults and tests.
pub fn parse<T, V>(
    path: &Path,
    text: &str,
    validate: impl FnOnce(T) -> Result<V, FieldError>,
) -> Result<V, ConfigError>
where
    T: DeserializeOwned,
{
    let raw: T = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    validate(raw).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        port: u16,
    }

    #[test]
    fn parse_error_names_file_and_key() {
        let err = parse(Path::new("edge.toml"), "port = \"x\"", |r: Raw| Ok(r.port)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("edge.toml"), "{msg}");
        assert!(msg.contains("port"), "{msg}");
    }

    #[test]
    fn validation_error_names_field() {
        let err = parse(Path::new("o.toml"), "port = 0", |r: Raw| {
            if r.port == 0 {
                Err(FieldError::new("port", "must not be 0"))
            } else {
                Ok(r.port)
            }
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config o.toml: field `port`: must not be 0"
        );
    }
}
