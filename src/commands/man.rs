//! `git ports man`: the manual page, embedded in the binary, printed or installed where `man`
//! finds it. git turns `git ports --help` into `man git-ports`, and man searches
//! `<dir>/../share/man` for each `<dir>` on PATH, so the page goes beside the binary.

use std::fs;
use std::path::PathBuf;

use crate::cli::ManArgs;
use crate::error::{Error, Result};
use crate::output::Out;

pub const PAGE: &str = include_str!("../../man/git-ports.1");

/// `<dir of the running binary>/../share/man/man1/git-ports.1`.
pub fn install_path() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|source| Error::Io {
            path: PathBuf::from("git-ports"),
            action: "cannot find the running binary",
            source,
        })?;
    let prefix = exe
        .parent()
        .and_then(|bin| bin.parent())
        .unwrap_or(exe.as_path());
    Ok(prefix.join("share/man/man1/git-ports.1"))
}

pub fn run(out: &mut Out, args: ManArgs) -> Result<()> {
    if !args.install {
        out.text.push_str(PAGE);
        return Ok(());
    }
    if cfg!(windows) {
        // Git for Windows shows `git help` pages as HTML, and there is no `man` to find ours.
        return Err(Error::Usage(
            "Windows has no `man` to show an installed page: read `git-ports --help` and `git-ports COMMAND --help`, or print the page's source with `git ports man`".into(),
        ));
    }
    let path = install_path()?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            action: "cannot create",
            source,
        })?;
    }
    fs::write(&path, PAGE).map_err(|source| Error::Io {
        path: path.clone(),
        action: "cannot write",
        source,
    })?;
    out.line(format!("Installed the manual page in {}", path.display()));
    out.line("`git ports --help` and `git help ports` now show it.");
    Ok(())
}
