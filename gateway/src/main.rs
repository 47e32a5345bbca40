//! The `gateway` binary: jemalloc as the allocator, then the library's command line.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(gateway::cli::main());
}
