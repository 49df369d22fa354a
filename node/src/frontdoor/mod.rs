//! Front doors: ways for stock git to reach a node without GitLab.
//!
//! - [`gitaly_ssh`]: the `gitaly-ssh` helper git runs as its SSH command;
//!   it turns git's SSH session into SSHService calls.
//! - [`http`]: the `gitaly-http` server, a small smart-HTTP front end
//!   mapping git's HTTP requests onto SmartHTTPService calls.

pub mod gitaly_ssh;
pub mod http;

/// Outgoing metadata for feature flags given as `name:bool,name:bool`
/// (`GITALY_FEATUREFLAGS`); malformed entries are skipped, as upstream does.
pub fn feature_flag_metadata(flags: &str) -> Vec<(String, &'static str)> {
    flags
        .split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once(':')?;
            let enabled = match value {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => "true",
                "0" | "f" | "F" | "FALSE" | "false" | "False" => "false",
                _ => return None,
            };
            Some((format!("gitaly-feature-{}", name.replace('_', "-")), enabled))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn feature_flags_parse_like_upstream() {
        let md = super::feature_flag_metadata("upload_pack_filter:false,hooks_rpc:1,broken,bad:maybe");
        assert_eq!(
            md,
            vec![
                ("gitaly-feature-upload-pack-filter".to_owned(), "false"),
                ("gitaly-feature-hooks-rpc".to_owned(), "true")
            ]
        );
    }
}
