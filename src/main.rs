//! The initbox binary: parse, log, run, exit. Everything else lives in the library.

use clap::Parser;

fn main() {
    let cli = match initbox::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => std::process::exit(initbox::reject_arguments(error).into()),
    };
    initbox::runtime::logging::init(cli.global.log_format, cli.global.verbosity());
    std::process::exit(initbox::run(cli).into());
}
