//! `validator`: `sync` (fetch and check the bundle, keep what passes) and `check` (one
//! offline decision as a JSON line, no network). Exit 0, or 2 with one line naming the
//! problem.

use clap::Parser;

fn main() {
    let args = validator::args::Args::parse();
    std::process::exit(validator::run(args));
}
