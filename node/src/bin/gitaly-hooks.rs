//! `gitaly-hooks`: the server-side git hooks of pushes, answered by the node.

fn main() -> std::process::ExitCode {
    cairn_node::hooks::cli::main()
}
