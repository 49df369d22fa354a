//! Language statistics of a tree, approximating GitLab's linguist-based
//! breakdown: each blob is classified by file name or extension (a
//! built-in table of programming and markup languages with linguist's
//! colours), documentation and vendored paths are skipped, and languages
//! are weighted by blob size. Unlike upstream, `.gitattributes`
//! overrides (`linguist-language` and friends) and content heuristics are
//! not applied.

use super::objects::{self, ObjectId};
use super::tree::{self, EntryKind};
use super::{GitError, Repo};
use std::collections::HashMap;

/// A detected language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language {
    pub name: &'static str,
    pub color: &'static str,
}

/// Bytes per language in a tree.
pub fn stats(repo: &Repo, root: ObjectId) -> Result<Vec<(Language, u64)>, GitError> {
    let mut totals: HashMap<&'static str, (Language, u64)> = HashMap::new();
    tree::walk_recursive(repo, root, b"", &mut |e| -> Result<bool, GitError> {
        if e.kind() != EntryKind::Blob || excluded(&e.path) {
            return Ok(true);
        }
        let Some(lang) = detect(&e.path) else { return Ok(true) };
        let size = objects::header(repo, e.id)?.map_or(0, |(_, s)| s);
        if size > 0 {
            totals.entry(lang.name).or_insert((lang, 0)).1 += size;
        }
        Ok(true)
    })?;
    let mut out: Vec<(Language, u64)> = totals.into_values().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.name.cmp(b.0.name)));
    Ok(out)
}

/// Documentation and vendored code do not count (linguist's
/// `documentation.yml` and `vendor.yml`, abridged).
fn excluded(path: &[u8]) -> bool {
    let path = String::from_utf8_lossy(path);
    let components: Vec<&str> = path.split('/').collect();
    let (dirs, file) = components.split_at(components.len() - 1);
    let file = file[0];
    if let Some(first) = dirs.first()
        && [
            "docs", "Docs", "doc", "Doc", "man", "Man", "examples", "Examples", "demo", "Demo", "demos", "Demos",
            "samples", "Samples", "sample", "Sample", "deps",
        ]
        .contains(first)
    {
        return true;
    }
    let vendored_dir = |d: &&str| {
        matches!(
            *d,
            "vendor" | "node_modules" | "bower_components" | "Documentation" | "documentation" | "javadoc" | "Javadoc"
        ) || d.eq_ignore_ascii_case("third_party")
            || d.eq_ignore_ascii_case("third-party")
            || d.eq_ignore_ascii_case("thirdparty")
            || d.eq_ignore_ascii_case("3rdparty")
    };
    if dirs.iter().any(vendored_dir) {
        return true;
    }
    let stem_is = |names: &[&str]| {
        names.iter().any(|n| file == *n || file.strip_prefix(n).is_some_and(|rest| rest.starts_with('.')))
    };
    stem_is(&[
        "README",
        "Readme",
        "readme",
        "CHANGELOG",
        "CHANGES",
        "CHANGE",
        "CONTRIBUTING",
        "COPYING",
        "INSTALL",
        "LICENSE",
        "LICENCE",
        "License",
        "Licence",
        "license",
        "licence",
    ]) || file.ends_with(".min.js")
        || file.ends_with(".min.css")
}

const fn lang(name: &'static str, color: &'static str) -> Language {
    Language { name, color }
}

/// The language of a file by name, then by extension; only programming
/// and markup languages (linguist ignores data and prose in totals).
fn detect(path: &[u8]) -> Option<Language> {
    let name = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
    let name = std::str::from_utf8(name).ok()?;
    let by_name = match name {
        "Makefile" | "GNUmakefile" | "makefile" => Some(lang("Makefile", "#427819")),
        "Dockerfile" => Some(lang("Dockerfile", "#384d54")),
        "Rakefile" | "Gemfile" | "Guardfile" | "Vagrantfile" => Some(lang("Ruby", "#701516")),
        "CMakeLists.txt" => Some(lang("CMake", "#DA3434")),
        _ => None,
    };
    if by_name.is_some() {
        return by_name;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "rs" => lang("Rust", "#dea584"),
        "go" => lang("Go", "#00ADD8"),
        "rb" | "rake" | "gemspec" | "ru" => lang("Ruby", "#701516"),
        "py" | "pyw" | "pyi" => lang("Python", "#3572A5"),
        "js" | "mjs" | "cjs" | "jsx" => lang("JavaScript", "#f1e05a"),
        "ts" | "mts" | "cts" => lang("TypeScript", "#3178c6"),
        "tsx" => lang("TSX", "#3178c6"),
        "java" => lang("Java", "#b07219"),
        "c" | "h" => lang("C", "#555555"),
        "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" => lang("C++", "#f34b7d"),
        "cs" => lang("C#", "#178600"),
        "sh" | "bash" | "zsh" | "ksh" => lang("Shell", "#89e051"),
        "php" => lang("PHP", "#4F5D95"),
        "kt" | "kts" => lang("Kotlin", "#A97BFF"),
        "swift" => lang("Swift", "#F05138"),
        "scala" | "sc" => lang("Scala", "#c22d40"),
        "hs" => lang("Haskell", "#5e5086"),
        "pl" | "pm" => lang("Perl", "#0298c3"),
        "lua" => lang("Lua", "#000080"),
        "ex" | "exs" => lang("Elixir", "#6e4a7e"),
        "erl" | "hrl" => lang("Erlang", "#B83998"),
        "clj" | "cljs" | "cljc" => lang("Clojure", "#db5855"),
        "dart" => lang("Dart", "#00B4AB"),
        "m" => lang("Objective-C", "#438eff"),
        "r" | "R" => lang("R", "#198CE7"),
        "jl" => lang("Julia", "#a270ba"),
        "groovy" | "gradle" => lang("Groovy", "#4298b8"),
        "ps1" | "psm1" => lang("PowerShell", "#012456"),
        "coffee" => lang("CoffeeScript", "#244776"),
        "zig" => lang("Zig", "#ec915c"),
        "nix" => lang("Nix", "#7e7eff"),
        "el" => lang("Emacs Lisp", "#c065db"),
        "vim" => lang("Vim Script", "#199f4b"),
        "tf" | "hcl" => lang("HCL", "#844FBA"),
        "html" | "htm" | "xhtml" => lang("HTML", "#e34c26"),
        "css" => lang("CSS", "#663399"),
        "scss" => lang("SCSS", "#c6538c"),
        "vue" => lang("Vue", "#41b883"),
        "svelte" => lang("Svelte", "#ff3e00"),
        "haml" => lang("Haml", "#ece2a9"),
        "erb" => lang("HTML+ERB", "#701516"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_and_exclusions() {
        assert_eq!(detect(b"src/core.rs").map(|l| l.name), Some("Rust"));
        assert_eq!(detect(b"bin/run.sh").map(|l| l.name), Some("Shell"));
        assert_eq!(detect(b"README.md"), None);
        assert_eq!(detect(b"Makefile").map(|l| l.name), Some("Makefile"));
        assert!(excluded(b"docs/x.rs") && excluded(b"a/vendor/b.go") && excluded(b"README.md"));
        assert!(excluded(b"LICENSE") && !excluded(b"src/license_check.rs"));
        assert!(!excluded(b"src/core.rs"));
    }
}
