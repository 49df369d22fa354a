//! One log line per finished RPC, in upstream's field names, written as
//! logrus-style text (`key=value`) or JSON per `[logging] format`.

use crate::config::LogFormat;
use std::io::Write as _;

/// A log line under construction: ordered fields.
#[derive(Debug, Default)]
pub struct Line {
    fields: Vec<(&'static str, Value)>,
}

/// A field value.
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Num(f64),
    Int(i64),
}

impl Line {
    pub fn str(&mut self, key: &'static str, v: impl Into<String>) -> &mut Self {
        self.fields.push((key, Value::Str(v.into())));
        self
    }

    pub fn num(&mut self, key: &'static str, v: f64) -> &mut Self {
        self.fields.push((key, Value::Num(v)));
        self
    }

    pub fn int(&mut self, key: &'static str, v: i64) -> &mut Self {
        self.fields.push((key, Value::Int(v)));
        self
    }

    fn json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.fields {
            let v = match v {
                Value::Str(s) => serde_json::Value::String(s.clone()),
                Value::Num(n) => {
                    serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
                Value::Int(i) => serde_json::Value::Number((*i).into()),
            };
            map.insert((*k).to_owned(), v);
        }
        serde_json::Value::Object(map).to_string()
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            match v {
                Value::Str(s)
                    if s.is_empty() || s.bytes().any(|b| !(b.is_ascii_graphic()) || b == b'"' || b == b'=') =>
                {
                    out.push_str(&format!("{s:?}"));
                }
                Value::Str(s) => out.push_str(s),
                Value::Num(n) => out.push_str(&format!("{n:.3}")),
                Value::Int(n) => out.push_str(&n.to_string()),
            }
        }
        out
    }
}

/// Where access lines go.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    format: LogFormat,
    enabled: bool,
}

impl AccessLog {
    /// Access lines are info-level; they are skipped when the configured
    /// level is above info.
    pub fn new(format: LogFormat, level: &str) -> Self {
        let enabled = matches!(level.to_ascii_lowercase().as_str(), "trace" | "debug" | "info");
        Self { format, enabled }
    }

    /// Writes one finished-call line to stdout.
    pub fn write(&self, line: &Line) {
        if !self.enabled {
            return;
        }
        let mut full = Line::default();
        full.str("time", humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
        full.str("level", "info");
        full.fields.extend(line.fields.iter().cloned());
        let text = match self.format {
            LogFormat::Json => full.json(),
            LogFormat::Text => full.text(),
        };
        let mut out = std::io::stdout().lock();
        // A closed stdout must not take the server down.
        let _ = writeln!(out, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let mut l = Line::default();
        l.str("msg", "finished unary call with code OK").str("grpc.code", "OK").num("grpc.time_ms", 1.5).int("n", 3);
        assert_eq!(l.text(), r#"msg="finished unary call with code OK" grpc.code=OK grpc.time_ms=1.500 n=3"#);
        let v: serde_json::Value = serde_json::from_str(&l.json()).expect("json");
        assert_eq!(v["grpc.code"], "OK");
        assert_eq!(v["grpc.time_ms"], 1.5);
    }
}
