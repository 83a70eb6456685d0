//! Declares the `loom` cfg, under which the raw lock algorithm is built on
//! loom's model atomics (see `src/primitive.rs`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
