//! License detection for a repository's HEAD: files at the top of the
//! tree whose names look like license files are compared, after
//! normalisation (case, punctuation, whitespace and copyright lines
//! ignored), with the texts of common licenses; the closest one above a
//! similarity threshold wins, with SPDX-style identifiers, names and URLs
//! as upstream reports them. A license file matching none is reported as
//! "other", as upstream does.
//!
//! The license texts under `licenses/` are the licenses' own texts.

use super::objects::{self, Kind};
use super::search;
use super::tree::Entry as TreeEntry;
use super::{GitError, Repo};
use gix::bstr::ByteSlice as _;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A detected license, as FindLicense answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct License {
    pub short_name: String,
    pub name: String,
    pub url: String,
    pub path: String,
    pub nickname: String,
}

/// A known license: SPDX id (lower case), name, first reference URL,
/// nickname and text.
struct Known {
    id: &'static str,
    name: &'static str,
    url: &'static str,
    nickname: &'static str,
    text: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        id: "mit",
        name: "MIT License",
        url: "https://opensource.org/licenses/MIT",
        nickname: "",
        text: include_str!("licenses/mit.txt"),
    },
    Known {
        id: "apache-2.0",
        name: "Apache License 2.0",
        url: "https://www.apache.org/licenses/LICENSE-2.0",
        nickname: "",
        text: include_str!("licenses/apache-2.0.txt"),
    },
    Known {
        id: "gpl-2.0",
        name: "GNU General Public License v2.0 only",
        url: "https://www.gnu.org/licenses/old-licenses/gpl-2.0-standalone.html",
        nickname: "GNU GPLv2",
        text: include_str!("licenses/gpl-2.0.txt"),
    },
    Known {
        id: "gpl-3.0",
        name: "GNU General Public License v3.0 only",
        url: "https://www.gnu.org/licenses/gpl-3.0-standalone.html",
        nickname: "GNU GPLv3",
        text: include_str!("licenses/gpl-3.0.txt"),
    },
    Known {
        id: "lgpl-2.1",
        name: "GNU Lesser General Public License v2.1 only",
        url: "https://www.gnu.org/licenses/old-licenses/lgpl-2.1-standalone.html",
        nickname: "GNU LGPLv2.1",
        text: include_str!("licenses/lgpl-2.1.txt"),
    },
    Known {
        id: "lgpl-3.0",
        name: "GNU Lesser General Public License v3.0 only",
        url: "https://www.gnu.org/licenses/lgpl-3.0-standalone.html",
        nickname: "GNU LGPLv3",
        text: include_str!("licenses/lgpl-3.0.txt"),
    },
    Known {
        id: "bsd-2-clause",
        name: "BSD 2-Clause \"Simplified\" License",
        url: "https://opensource.org/licenses/BSD-2-Clause",
        nickname: "",
        text: include_str!("licenses/bsd-2-clause.txt"),
    },
    Known {
        id: "bsd-3-clause",
        name: "BSD 3-Clause \"New\" or \"Revised\" License",
        url: "https://opensource.org/licenses/BSD-3-Clause",
        nickname: "",
        text: include_str!("licenses/bsd-3-clause.txt"),
    },
    Known {
        id: "mpl-2.0",
        name: "Mozilla Public License 2.0",
        url: "https://www.mozilla.org/MPL/2.0/",
        nickname: "",
        text: include_str!("licenses/mpl-2.0.txt"),
    },
    Known {
        id: "isc",
        name: "ISC License",
        url: "https://www.isc.org/licenses/",
        nickname: "",
        text: include_str!("licenses/isc.txt"),
    },
    Known {
        id: "unlicense",
        name: "The Unlicense",
        url: "https://unlicense.org/",
        nickname: "",
        text: include_str!("licenses/unlicense.txt"),
    },
];

/// Least similarity (Sørensen–Dice over word pairs) to call a text a
/// given license. Real license files differ from the reference texts in
/// titles, copyright lines, appendices and addresses, not in substance.
const THRESHOLD: f64 = 0.8;

/// License files are small; anything larger is not read.
const MAX_LICENSE_SIZE: u64 = 1 << 20;

/// Whether a top-level file name looks like a license file (LICENSE,
/// COPYING, LICENSE.md, mit.txt, gpl-3.0, …), upstream's name rule.
fn is_license_name(name: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^(|.*[-_. ])(li[cs]en[cs]es?|legal|copy(left|right|ing)|unlicense|l?gpl([-_ v]?)(\d\.?\d)?|bsd|mit|apache)(|[-_. ].*)$",
        )
        .expect("the license name pattern compiles")
    })
    .is_match(name)
}

/// README-like files are never taken for license files.
fn is_readme(name: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(readme|guidelines)(\.md|\.rst|\.html|\.txt)?$").expect("compiles"))
        .is_match(name)
}

/// Word pairs of a normalised text, with counts.
type Shingles = HashMap<(String, String), u32>;

fn shingles(text: &[u8]) -> (Shingles, u32) {
    let text = text.to_str_lossy().to_lowercase();
    let mut words: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        // Copyright lines differ in every copy (long lines are text that
        // merely starts with the word).
        if (t.starts_with("copyright") || t.starts_with("(c)") || t.starts_with('©')) && t.len() < 120 {
            continue;
        }
        words.extend(t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| match w {
            "licence" => "license".to_owned(),
            other => other.to_owned(),
        }));
    }
    let mut out = HashMap::new();
    let mut total = 0;
    for pair in words.windows(2) {
        *out.entry((pair[0].clone(), pair[1].clone())).or_insert(0) += 1;
        total += 1;
    }
    (out, total)
}

fn known_shingles() -> &'static [(Shingles, u32)] {
    static CACHE: OnceLock<Vec<(Shingles, u32)>> = OnceLock::new();
    CACHE.get_or_init(|| KNOWN.iter().map(|k| shingles(k.text.as_bytes())).collect())
}

/// Similarity of two shingle multisets in [0, 1].
fn dice(a: &(Shingles, u32), b: &(Shingles, u32)) -> f64 {
    if a.1 == 0 || b.1 == 0 {
        return 0.0;
    }
    let (small, large) = if a.0.len() <= b.0.len() { (a, b) } else { (b, a) };
    let common: u32 = small.0.iter().map(|(k, n)| (*n).min(large.0.get(k).copied().unwrap_or(0))).sum();
    2.0 * f64::from(common) / f64::from(a.1 + b.1)
}

/// The best known license for a text and its similarity.
fn classify(text: &[u8]) -> Option<(usize, f64)> {
    let s = shingles(text);
    let known = known_shingles();
    // Ties go to the smaller identifier, as upstream sorts them.
    let mut best: Option<(usize, f64)> = None;
    for (i, k) in known.iter().enumerate() {
        // Texts of very different lengths cannot be similar enough.
        let (lo, hi) = (s.1.min(k.1), s.1.max(k.1));
        if f64::from(lo) < f64::from(hi) * (THRESHOLD / (2.0 - THRESHOLD)) {
            continue;
        }
        let score = dice(&s, k);
        let better = match best {
            None => true,
            Some((j, b)) => score > b || (score == b && KNOWN[i].id < KNOWN[j].id),
        };
        if better {
            best = Some((i, score));
        }
    }
    best.filter(|(_, score)| *score >= THRESHOLD)
}

/// Detects the license of HEAD's tree; `None` when HEAD does not resolve
/// or no license file is found.
pub fn find(repo: &Repo) -> Result<Option<License>, GitError> {
    let Some(commit) = objects::resolve_commit(repo, b"HEAD")? else { return Ok(None) };
    let Some(tree) = search::tree_of(repo, commit)? else { return Ok(None) };
    let entries = search::read_tree(repo, tree)?;
    let blobs: Vec<&TreeEntry> = entries.iter().filter(|e| e.is_file()).collect();
    let mut first_license_path: Option<String> = None;
    let mut best: Option<(usize, f64, String)> = None;
    for entry in &blobs {
        let name = entry.name.to_str_lossy().into_owned();
        let lower = name.to_lowercase();
        if !is_license_name(&lower) || is_readme(&lower) {
            continue;
        }
        let Some(data) = read_small(repo, entry)? else { continue };
        first_license_path.get_or_insert_with(|| name.clone());
        // A license file may just name the file holding the text.
        let pointed = data.trim().to_str().ok().and_then(|target| {
            blobs.iter().find(|e| e.name.as_bstr() == target && !target.is_empty() && e.name != entry.name)
        });
        let (data, path) = match pointed {
            Some(target) => match read_small(repo, target)? {
                Some(d) => (d, target.name.to_str_lossy().into_owned()),
                None => continue,
            },
            None => (data, name),
        };
        if let Some((i, score)) = classify(&data) {
            let better = match &best {
                None => true,
                Some((j, b, _)) => score > *b || (score == *b && KNOWN[i].id < KNOWN[*j].id),
            };
            if better {
                best = Some((i, score, path));
            }
        }
    }
    Ok(match (best, first_license_path) {
        (Some((i, _, path)), _) => {
            let k = &KNOWN[i];
            Some(License {
                short_name: k.id.to_owned(),
                name: k.name.to_owned(),
                url: k.url.to_owned(),
                path,
                nickname: k.nickname.to_owned(),
            })
        }
        // A license file of unknown terms: shown as "LICENSE" in GitLab.
        (None, Some(path)) => Some(License {
            short_name: "other".to_owned(),
            name: "Other".to_owned(),
            url: String::new(),
            path,
            nickname: "LICENSE".to_owned(),
        }),
        (None, None) => None,
    })
}

fn read_small(repo: &Repo, entry: &TreeEntry) -> Result<Option<Vec<u8>>, GitError> {
    match objects::header(repo, entry.id)? {
        Some((Kind::Blob, size)) if size <= MAX_LICENSE_SIZE => {}
        _ => return Ok(None),
    }
    Ok(objects::read(repo, entry.id)?.map(|o| o.data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(text: &str) -> Option<&'static str> {
        classify(text.as_bytes()).map(|(i, _)| KNOWN[i].id)
    }

    #[test]
    fn every_reference_text_classifies_as_itself() {
        for k in KNOWN {
            assert_eq!(id_of(k.text), Some(k.id));
        }
    }

    #[test]
    fn variations_still_match() {
        let mit = KNOWN[0].text.replace("<year> <copyright holders>", "2024 Jane Doe").replace('\n', " ");
        assert_eq!(id_of(&mit.to_uppercase()), Some("mit"));
        let bsd2 = KNOWN.iter().find(|k| k.id == "bsd-2-clause").expect("bsd-2").text;
        assert_eq!(id_of(&bsd2.replace("BSD 2-Clause License", "")), Some("bsd-2-clause"));
        assert_eq!(id_of("this doesn't match any known license"), None);
    }

    #[test]
    fn license_file_names() {
        for name in [
            "license",
            "licence.md",
            "copying",
            "license.txt",
            "mit.txt",
            "unlicense",
            "gpl-3.0",
            "copying.lesser",
            "legal",
        ] {
            assert!(is_license_name(name), "{name}");
        }
        for name in ["src", "submit.txt", "readme.md", "main.rs"] {
            assert!(!is_license_name(name), "{name}");
        }
    }
}
