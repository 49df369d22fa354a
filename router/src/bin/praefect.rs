//! `praefect`: the Cairn router.

fn main() -> std::process::ExitCode {
    cairn_router::cli::main(std::env::args().collect())
}
