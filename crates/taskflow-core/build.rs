//! Rebuilds the crate when `migrations/` changes: `embed_migrations!` reads the folder at
//! compile time, and Cargo would not otherwise notice a new migration file.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
