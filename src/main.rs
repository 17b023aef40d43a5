/// mimalloc instead of the system allocator: see BENCHMARKS.md "HTTP service" (issue 12).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vcf_cds::cli::main()
}
