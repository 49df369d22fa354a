//! `praefect`: the Cairn router.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
