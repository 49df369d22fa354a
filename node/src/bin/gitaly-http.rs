//! `gitaly-http`: a smart-HTTP front door for stock git in front of a node.

fn main() -> std::process::ExitCode {
    cairn_node::frontdoor::http::main(std::env::args_os().collect())
}
