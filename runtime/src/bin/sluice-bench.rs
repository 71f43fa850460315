//! The `sluice-bench` binary (`scripts/bench`); everything lives in
//! [`sluice::bench`].

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::bench::main()
}
