//! One round of every scenario, then the table.
//!
//! ```text
//! cargo run --release -p ipc-chaos --example one_round
//! ```

fn main() {
    // Children re-execute this example: they start, and end, here.
    multiproc_core::process::init();
    let cfg = ipc_chaos::Config {
        duration: None,
        rounds: Some(ipc_chaos::scenario_names().len() as u64),
        ..ipc_chaos::Config::default()
    };
    println!("seed {:#x}", cfg.seed);
    let report = ipc_chaos::run(&cfg);
    println!("{report}");
    std::process::exit(if report.is_clean() { 0 } else { 1 });
}
