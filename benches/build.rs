//! Records the git commit and the compiler's version for `ipc-bench`'s
//! `--version` and JSON (`IPC_BENCH_GIT_COMMIT`, `IPC_BENCH_RUSTC`); either
//! is left empty when it cannot be found.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let commit = run("git", &["-C", &dir, "rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = run(
        "git",
        &["-C", &dir, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    let commit = if dirty && !commit.is_empty() {
        format!("{commit}-dirty")
    } else {
        commit
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = run(&rustc, &["--version"]).unwrap_or_default();
    println!("cargo:rustc-env=IPC_BENCH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=IPC_BENCH_RUSTC={version}");
    // Built again when HEAD moves (a commit or a checkout) or the index
    // changes (what "dirty" reads).
    for p in ["HEAD", "logs/HEAD", "index"] {
        if let Some(path) = run("git", &["-C", &dir, "rev-parse", "--git-path", p]) {
            let path = std::path::Path::new(&dir).join(path);
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
}
