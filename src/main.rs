fn main() -> std::process::ExitCode {
    wavelift::cli::main()
}
