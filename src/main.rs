fn main() -> std::process::ExitCode {
    vcf_cds::cli::main()
}
