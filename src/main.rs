//! The `dataknobs` binary: see [`dataknobs::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    dataknobs::cli::main_entry().await
}
