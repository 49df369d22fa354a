//! `gitaly-ssh`: git's SSH command for talking to a node over gRPC.

fn main() -> std::process::ExitCode {
    cairn_node::frontdoor::gitaly_ssh::main(std::env::args().collect())
}
