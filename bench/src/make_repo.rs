//! `cairn-bench-repo`: writes a `git fast-import` stream for a deterministic
//! benchmark repository: about 20,000 commits over 2,000 files in 200
//! directories (most commits touch one to three files, every 97th is a
//! merge of a short side line), 1,000 branches and 500 tags.
//!
//! ```text
//! git init --bare bench.git
//! cairn-bench-repo | git -C bench.git fast-import --quiet
//! ```

use std::io::Write as _;

const COMMITS: usize = 20_000;
const FILES: usize = 2_000;
const BRANCHES: usize = 1_000;
const TAGS: usize = 500;

fn main() -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut mark = 0usize;
    let mut commit_marks = Vec::with_capacity(COMMITS);
    // Cheap deterministic pseudo-random numbers.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut side_tip: Option<usize> = None;
    for i in 0..COMMITS {
        let touched = 1 + (next() % 3) as usize;
        let mut ops = Vec::new();
        for _ in 0..touched {
            let f = (next() % FILES as u64) as usize;
            mark += 1;
            let body =
                format!("file {f}\nedited in commit {i}\n{}\n", "lorem ipsum dolor sit amet ".repeat(1 + f % 20));
            write!(out, "blob\nmark :{mark}\ndata {}\n{body}\n", body.len())?;
            ops.push(format!("M 100644 :{mark} dir{:03}/file{:04}.txt\n", f % 200, f));
        }
        mark += 1;
        let t = 1_400_000_000 + i as u64 * 3_600;
        let on_side = i % 97 >= 90 && i % 97 <= 95;
        let branch = if on_side { "side" } else { "main" };
        let message = format!("Commit {i}: update {} file(s)\n\nGenerated for benchmarks.\n", ops.len());
        write!(
            out,
            "commit refs/heads/{branch}\nmark :{mark}\nauthor Bench Author <author@bench.invalid> {t} +0000\ncommitter Bench Committer <committer@bench.invalid> {t} +0000\ndata {}\n{message}\n",
            message.len()
        )?;
        if on_side {
            let from = if i % 97 == 90 { commit_marks.last().copied() } else { side_tip };
            if let Some(f) = from {
                writeln!(out, "from :{f}")?;
            }
            side_tip = Some(mark);
        } else {
            if let Some(prev) = commit_marks.iter().rev().find(|m| Some(**m) != side_tip) {
                writeln!(out, "from :{prev}")?;
            }
            if i % 97 == 96
                && let Some(s) = side_tip.take()
            {
                writeln!(out, "merge :{s}")?;
            }
        }
        for op in &ops {
            out.write_all(op.as_bytes())?;
        }
        writeln!(out)?;
        if !on_side {
            commit_marks.push(mark);
        }
    }
    for b in 0..BRANCHES {
        let target = commit_marks[(next() % commit_marks.len() as u64) as usize];
        write!(out, "reset refs/heads/feature/{b:04}\nfrom :{target}\n\n")?;
    }
    for t in 0..TAGS {
        let target = commit_marks[t * (commit_marks.len() / TAGS)];
        let message = format!("Release {t}\n");
        write!(
            out,
            "tag v{t}.0\nfrom :{target}\ntagger Bench Tagger <tagger@bench.invalid> {} +0000\ndata {}\n{message}\n",
            1_400_000_000 + t as u64,
            message.len()
        )?;
    }
    writeln!(out, "done")?;
    out.flush()
}
