//! Helpers shared by the integration tests.

use std::path::Path;

/// Copies a configuration tree (files and directories) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the tree") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("its type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a file");
        }
    }
}

/// Asks `cond` every `interval` until it holds (true) or `timeout` has passed (false).
#[allow(dead_code)] // not every test binary that includes this module waits for anything
pub fn poll_until(
    timeout: std::time::Duration,
    interval: std::time::Duration,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(interval);
    }
    false
}
