//! `gitaly`: the Cairn storage node.

fn main() -> std::process::ExitCode {
    cairn_node::cli::main(std::env::args().collect())
}
