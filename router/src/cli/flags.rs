//! Command-line flags the way Go's `flag` package reads them, so scripts
//! written for upstream's `praefect` keep working: `-name value`,
//! `-name=value`, `--name value`, boolean flags alone or as `-name=false`,
//! and flag parsing stops at the first argument that is not a flag (or
//! after `--`).

use std::collections::HashMap;
use std::time::Duration;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Value,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Placeholder shown in usage (`-timeout duration`).
    pub(crate) value_name: &'static str,
    pub(crate) usage: &'static str,
    pub(crate) default: Option<&'static str>,
}

impl Spec {
    pub(crate) const fn boolean(name: &'static str, usage: &'static str) -> Self {
        Self { name, kind: Kind::Bool, value_name: "", usage, default: None }
    }

    pub(crate) const fn value(name: &'static str, value_name: &'static str, usage: &'static str) -> Self {
        Self { name, kind: Kind::Value, value_name, usage, default: None }
    }

    pub(crate) const fn with_default(self, default: &'static str) -> Self {
        Self { default: Some(default), ..self }
    }
}

/// Why the arguments could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlagError {
    /// `-h` / `-help`: print usage and succeed.
    #[error("help requested")]
    Help,
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid boolean value {value:?} for -{name}")]
    BadBool { name: String, value: String },
    #[error("invalid value {value:?} for flag -{name}: {reason}")]
    BadValue { name: String, value: String, reason: String },
    #[error("Required flag {0:?} not set")]
    Required(&'static str),
}

/// The flags given (or defaulted) and the arguments after them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    values: HashMap<&'static str, String>,
    pub(crate) positional: Vec<String>,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, FlagError> {
    // The spellings strconv.ParseBool accepts.
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(FlagError::BadBool { name: name.to_owned(), value: value.to_owned() }),
    }
}

/// Reads `args` against `specs`.
pub(crate) fn parse(specs: &[Spec], args: &[String]) -> Result<Parsed, FlagError> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else { break };
        let body = body.strip_prefix('-').unwrap_or(body);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Unknown(body.to_owned()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Unknown(name.to_owned()));
        };
        i += 1;
        let value = match (spec.kind, inline) {
            (Kind::Bool, Some(v)) => parse_bool(name, v)?.to_string(),
            (Kind::Bool, None) => "true".to_owned(),
            (Kind::Value, Some(v)) => v.to_owned(),
            (Kind::Value, None) => {
                let v = args.get(i).ok_or_else(|| FlagError::MissingValue(name.to_owned()))?;
                i += 1;
                v.clone()
            }
        };
        parsed.values.insert(spec.name, value);
    }
    parsed.positional = args[i..].to_vec();
    for spec in specs {
        if let Some(default) = spec.default {
            parsed.values.entry(spec.name).or_insert_with(|| default.to_owned());
        }
    }
    Ok(parsed)
}

impl Parsed {
    /// The flag's value; empty when neither given nor defaulted.
    pub(crate) fn string(&self, name: &str) -> String {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v == "true")
    }

    /// The value of a flag that must be given and not empty.
    pub(crate) fn required(&self, name: &'static str) -> Result<String, FlagError> {
        self.values.get(name).filter(|v| !v.is_empty()).cloned().ok_or(FlagError::Required(name))
    }

    pub(crate) fn int<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, FlagError>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|e: T::Err| FlagError::BadValue {
                name: name.to_owned(),
                value: v.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// A Go duration (`10s`, `1h30m`).
    pub(crate) fn duration(&self, name: &str) -> Result<Option<Duration>, FlagError> {
        let Some(v) = self.values.get(name) else { return Ok(None) };
        go_duration(v).map(Some).map_err(|reason| FlagError::BadValue {
            name: name.to_owned(),
            value: v.clone(),
            reason,
        })
    }
}

/// Parses a Go duration string (`10s`, `1h30m`, `250ms`).
pub(crate) fn go_duration(v: &str) -> Result<Duration, String> {
    use serde::Deserialize as _;
    let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(v);
    cairn_node::config::GoDuration::deserialize(de).map(|d| d.get()).map_err(|e| e.to_string())
}

/// The flags section of a usage text, in the style of Go's `PrintDefaults`.
pub(crate) fn describe(specs: &[Spec]) -> String {
    let mut out = String::new();
    for s in specs {
        out.push_str("  -");
        out.push_str(s.name);
        if s.kind == Kind::Value {
            out.push(' ');
            out.push_str(s.value_name);
        }
        out.push_str("\n    \t");
        out.push_str(s.usage);
        if let Some(d) = s.default {
            out.push_str(&format!(" (default {d:?})"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec::value("config", "FILE", "config file"),
        Spec::boolean("apply", "apply"),
        Spec::boolean("ignore-unknown", "ignore").with_default("true"),
        Spec::value("timeout", "duration", "timeout"),
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_go_style_flags() {
        let p = parse(SPECS, &args(&["--config=x.toml", "-apply", "-timeout", "3s", "cmd", "-apply"])).expect("ok");
        assert_eq!(p.string("config"), "x.toml");
        assert!(p.bool("apply"));
        assert!(p.bool("ignore-unknown"));
        assert_eq!(p.duration("timeout").expect("ok"), Some(Duration::from_secs(3)));
        assert_eq!(p.positional, args(&["cmd", "-apply"]));

        let p = parse(SPECS, &args(&["-ignore-unknown=false", "--", "-x"])).expect("ok");
        assert!(!p.bool("ignore-unknown"));
        assert_eq!(p.positional, args(&["-x"]));
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse(SPECS, &args(&["-nope"])).expect_err("rejected"), FlagError::Unknown("nope".into()));
        assert_eq!(parse(SPECS, &args(&["-config"])).expect_err("rejected"), FlagError::MissingValue("config".into()));
        assert!(matches!(parse(SPECS, &args(&["-apply=maybe"])).expect_err("rejected"), FlagError::BadBool { .. }));
        assert_eq!(parse(SPECS, &args(&["-h"])).expect_err("rejected"), FlagError::Help);
        let p = parse(SPECS, &args(&["-timeout", "soon"])).expect("parsed");
        assert!(p.duration("timeout").is_err());
        assert_eq!(p.required("config").expect_err("rejected").to_string(), "Required flag \"config\" not set");
    }
}
