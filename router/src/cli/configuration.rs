//! `praefect configuration validate`: reads a config from stdin and prints
//! every problem as JSON, `{"errors": [{"key": [...], "message": ...}]}`,
//! exiting 2 when the config is invalid (upstream's format and code).

use crate::config::Config;
use std::io::Read as _;
use std::process::ExitCode;

/// Exit code for a config that does not decode or validate.
const INVALID: u8 = 2;

const USAGE: &str = "Usage: praefect configuration validate < praefect.config.toml\n\n\
    Applies validation rules to the configuration read from stdin and prints\n\
    validation errors in JSON format on stdout.\n";

#[derive(serde::Serialize)]
struct Entry {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    key: Vec<String>,
    message: String,
}

#[derive(serde::Serialize)]
struct Report {
    errors: Vec<Entry>,
}

/// `configuration <args>`.
pub(super) fn main(args: &[String]) -> ExitCode {
    match args {
        [validate] if validate == "validate" => {}
        [validate, help] if validate == "validate" && matches!(help.as_str(), "-h" | "-help" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [validate, ..] if validate == "validate" => {
            print!("{USAGE}");
            eprintln!("invalid argument(s)");
            return ExitCode::FAILURE;
        }
        _ => {
            eprintln!("Usage: praefect configuration validate");
            return ExitCode::from(2);
        }
    }
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let errors = match Config::from_toml(&text) {
        Err(message) => vec![Entry { key: Vec::new(), message: message.trim().to_owned() }],
        Ok(loaded) => match loaded.config.validate() {
            Ok(()) => return ExitCode::SUCCESS,
            Err(errors) => errors
                .0
                .into_iter()
                .map(|e| Entry {
                    key: e.key.split('.').filter(|k| !k.is_empty()).map(str::to_owned).collect(),
                    message: e.message,
                })
                .collect(),
        },
    };
    match serde_json::to_string_pretty(&Report { errors }) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("encode errors: {e}"),
    }
    ExitCode::from(INVALID)
}
