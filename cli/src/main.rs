//! `ipc`: see, watch and clean the shared-memory segments of the `ipc`
//! workspace.
//!
//! ```text
//! ipc list [--json]              every segment under /dev/shm/ipc.<prefix>*
//! ipc show NAME [--json]         one segment's header and its object's state
//! ipc watch NAME... [--once]     counters as rates, refreshed like top
//! ipc clean [--dry-run]          remove stale segments, exactly as sweep does
//! ```
//!
//! `--prefix P` (before or after the command) restricts every command to
//! segments whose name starts with `P`. Reading never writes to a segment,
//! never locks it and never waits for a peer: objects are opened read-only
//! without following links and copied with `pread` (see
//! [`multiproc_core::inspect`]). `clean` removes what [`multiproc_core::sweep`] removes
//! and nothing else: segments whose creator is proven dead, and objects left
//! without a header past a grace period; never a live creator's segment,
//! another user's, another pid namespace's or another program's object.
//!
//! Exit status: 0 on success, 1 when the command failed (a segment that does
//! not exist, `/dev/shm` unreadable), 2 for a usage error.

mod objects;
mod segments;
mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// See, watch and clean the shared-memory segments of the ipc workspace.
#[derive(Debug, Parser)]
#[command(name = "ipc", version, about, long_about = None)]
struct Cli {
    /// Only segments whose name (after the workspace's `ipc.`) starts with
    /// this.
    #[arg(long, global = true, default_value = "")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the segments: name, kind, size, creator and whether it is
    /// alive, age, owner and mode; /dev/shm's size and free space.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one segment: its header and its object's state and counters.
    Show {
        /// The segment's name (without the `ipc.` of /dev/shm).
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Watch the counters of one or more segments as rates per second,
    /// refreshed until Ctrl-C.
    Watch {
        /// The segments' names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Seconds between two refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print one frame (two samples one interval apart) and exit.
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Print this many frames and exit.
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// Remove stale segments: those whose creator is proven dead, as
    /// multiproc_core::sweep decides.
    Clean {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::List { json } => segments::list(&cli.prefix, json),
        Command::Show { name, json } => segments::show(&cli.prefix, &name, json),
        Command::Watch {
            names,
            interval,
            once,
            iterations,
        } => {
            let frames = if once { Some(1) } else { iterations };
            watch::watch(&cli.prefix, &names, interval, frames)
        }
        Command::Clean { dry_run, json } => segments::clean(&cli.prefix, dry_run, json),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc: {e}");
            ExitCode::FAILURE
        }
    }
}
