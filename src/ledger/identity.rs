//! A repository's identity in the ledger: one path, whatever path reached it (symlinks
//! resolved, bind mounts undone), so one repository never conflicts with itself.

use std::fs;
use std::path::{Path, PathBuf};

/// The one path a repository is known by in the ledger, whatever path reached it: its common
/// dir with symlinks resolved, and on Linux with bind mounts undone (a path under a bind
/// mount of `/src/app` at `/mnt/app` is the `/src/app` path), so one repository reached two
/// ways never conflicts with itself, and the name it is recorded under outlives the alias.
pub fn identity(common_dir: &Path) -> PathBuf {
    let real = fs::canonicalize(common_dir).unwrap_or_else(|_| common_dir.to_path_buf());
    #[cfg(target_os = "linux")]
    if let Some(p) = unbind(&real) {
        return p;
    }
    real
}

/// `path` as it is reached through the mount of its file system's root, when the mount it
/// is under is a bind mount of a directory inside that file system.
#[cfg(target_os = "linux")]
fn unbind(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    // `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`: device, root of the
    // mount inside the file system, mount point; paths escape space and backslash as `\ooo`.
    let mut table = Vec::with_capacity(16 << 10);
    fs::File::open("/proc/self/mountinfo")
        .and_then(|mut f| f.read_to_end(&mut table))
        .ok()?;
    let unescape = |s: &[u8]| -> Vec<u8> {
        if !s.contains(&b'\\') {
            return s.to_vec();
        }
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let octal = s.get(i + 1..i + 4).and_then(|o| {
                o.iter()
                    .all(|d| (b'0'..=b'7').contains(d))
                    .then(|| o.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0')))
            });
            match octal {
                Some(v) if s[i] == b'\\' => {
                    out.push(v as u8);
                    i += 4;
                }
                _ => {
                    out.push(s[i]);
                    i += 1;
                }
            }
        }
        out
    };
    let fields = |line: &[u8]| -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let mut f = line.split(|&b| b == b' ');
        let dev = f.nth(2)?.to_vec();
        Some((dev, unescape(f.next()?), unescape(f.next()?)))
    };
    let bytes = path.as_os_str().as_bytes();
    let under = |point: &[u8]| {
        point == b"/"
            || bytes.starts_with(point) && matches!(bytes.get(point.len()), None | Some(b'/'))
    };
    // The mount the path is under: the longest mount point that is a prefix of it (the last
    // such line, where one is mounted over another).
    let mut best: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = None;
    for line in table.split(|&b| b == b'\n') {
        let Some((dev, root, point)) = fields(line) else {
            continue;
        };
        if under(&point) && best.as_ref().is_none_or(|b| point.len() >= b.2.len()) {
            best = Some((dev, root, point));
        }
    }
    let (dev, root, point) = best?;
    if root == b"/" {
        return None;
    }
    let whole = table
        .split(|&b| b == b'\n')
        .filter_map(fields)
        .find(|(d, r, _)| *d == dev && r == b"/")?;
    let rest = path
        .strip_prefix(std::ffi::OsStr::from_bytes(&point))
        .ok()?;
    let inner = Path::new(std::ffi::OsStr::from_bytes(&root))
        .strip_prefix("/")
        .ok()?;
    let p = Path::new(std::ffi::OsStr::from_bytes(&whole.2))
        .join(inner)
        .join(rest);
    same_repo(&p, path).then_some(p)
}

/// Whether two common dirs are one repository: the same path, or the same directory reached
/// by two (a bind mount, a symlinked parent).
pub fn same_repo(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
            return (x.dev(), x.ino()) == (y.dev(), y.ino());
        }
    }
    false
}
