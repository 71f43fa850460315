//! The `sluice-bench` binary (`scripts/bench`); everything lives in
//! [`sluice::bench`].

fn main() -> std::process::ExitCode {
    sluice::bench::main()
}
