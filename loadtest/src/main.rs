//! The `loadtest` binary: parse the flags, run, print the table, write the reports, exit
//! 0 (pass), 1 (a threshold held or a must-deny code was allowed) or 2 (bad usage).

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;

fn main() {
    let args = loadtest::args::Args::parse();
    if !args.compare.is_empty() {
        let code = loadtest::compare(&args).unwrap_or_else(|e| {
            eprintln!("loadtest: {e}");
            loadtest::EXIT_USAGE
        });
        std::process::exit(code);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            std::process::exit(loadtest::EXIT_USAGE);
        }
    };
    let code = match rt.block_on(loadtest::execute(args.clone())) {
        Ok(report) => loadtest::finish(&args, &report).unwrap_or_else(|e| {
            eprintln!("loadtest: {e}");
            loadtest::EXIT_USAGE
        }),
        Err(e) => {
            eprintln!("loadtest: {e}");
            loadtest::EXIT_USAGE
        }
    };
    // Do not wait for connections the gateway may have left hanging.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
