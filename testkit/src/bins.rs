//! Finding the installed server binaries.

use crate::error::{Error, ServerKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub(crate) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directories of `$PATH`.
pub(crate) fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default()
}

pub(crate) fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

/// Appends `extra` directories that are not in `dirs` yet.
pub(crate) fn push_unique(dirs: &mut Vec<PathBuf>, extra: impl IntoIterator<Item = PathBuf>) {
    for dir in extra {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
}

pub(crate) fn missing(server: ServerKind, binary: &str, searched: &[PathBuf]) -> Error {
    Error::MissingBinary {
        server,
        binary: binary.to_string(),
        searched: if searched.is_empty() {
            "no directories".to_string()
        } else {
            searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        },
        package: server.debian_package(),
    }
}

/// An explicitly configured binary directory: the config's, else the environment variable's.
pub(crate) fn configured_dir(config: Option<&Path>, env_var: &str) -> Option<PathBuf> {
    config.map(Path::to_path_buf).or_else(|| std::env::var_os(env_var).filter(|v| !v.is_empty()).map(PathBuf::from))
}
