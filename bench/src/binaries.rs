//! Where the executables under test are: next to this binary (the same cargo profile), and the
//! project's Python venv for the `ib_async` baseline.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The `ib_async` one-shot script, compiled in so the binary works from any directory.
pub const IB_ASYNC_ONCE: &str = include_str!("../python/ib_async_once.py");

/// `name` in the directory of the running executable (`target/release` or `target/debug`).
pub fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::setup("cannot find the running executable", e))?;
    let dir = exe.parent().ok_or_else(|| Error::Setup("the running executable has no directory".into()))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Setup(format!(
            "{name} not found next to ibgw-bench; build it in the same profile (cargo build [--release] -p {name})"
        )))
    }
}

/// The venv interpreter: `IBGW_BENCH_PYTHON` when set, else the first `.venv/bin/python` found
/// walking up from the current directory and from the executable's directory.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("IBGW_BENCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    starts.into_iter().flatten().find_map(|start| venv_above(&start))
}

fn venv_above(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join(".venv").join("bin").join("python")).find(|p| p.is_file())
}
