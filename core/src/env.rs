//! Reading settings from environment variables: the error every subsystem reports a bad
//! value with ([`ConfigError`], naming the variable) and the number readers they share. A
//! leaf: the subsystems parse their own settings with it, and `config` assembles them.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self { variable, reason: reason.into() }
    }
}

/// A whole number that may be zero.
pub fn whole_number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(text) => {
            text.parse::<u64>().map_err(|_| ConfigError::new(variable, format!("`{text}` is not a whole number")))
        }
    }
}

/// A whole number greater than zero.
pub fn positive_int(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match whole_number(get, variable, default)? {
        0 => Err(ConfigError::new(variable, "must be greater than zero")),
        n => Ok(n),
    }
}
