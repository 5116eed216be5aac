//! Another repository on this machine, looked at from outside (for `status --machine`): its
//! worktrees as its git files say now, without opening it.

use super::*;

/// A worktree of another repository, as its admin files say now.
pub struct OtherWorktree {
    pub name: String,
    pub path: PathBuf,
    pub head: Head,
    /// Why it is gone, if it is.
    pub stale: Option<Gone>,
}

/// Another repository, by its common dir. Branches in a reftable repository are asked of
/// git once, for all its worktrees.
pub struct Other {
    common_dir: PathBuf,
    heads: OnceCell<HashMap<PathBuf, Head>>,
}

impl Other {
    pub fn new(common_dir: &Path) -> Other {
        Other {
            common_dir: common_dir.to_path_buf(),
            heads: OnceCell::new(),
        }
    }

    /// The worktree a registry key names, read live: a worktree moved with `git worktree
    /// move` is where its admin files say, not where the registry last saw it (`seen_at`).
    pub fn worktree(&self, key: &str, seen_at: &Path) -> OtherWorktree {
        let repo = &self.common_dir;
        let (head, name, path, stale, head_file) = if key == MAIN_KEY {
            let path = seen_at.to_path_buf();
            let gone = !path.exists();
            (
                read_head(&repo.join("HEAD")),
                basename(&path),
                path,
                gone.then_some(Gone::Missing),
                repo.join("HEAD"),
            )
        } else {
            match linked_at(repo, key) {
                Some(w) => {
                    let head_file = repo
                        .join("worktrees")
                        .join(crate::registry::name_of_key(key).unwrap_or_default())
                        .join("HEAD");
                    let stale = (w.prunable && !w.locked).then_some(Gone::Missing);
                    (w.head, w.name, w.path, stale, head_file)
                }
                None => (
                    Head::Unknown,
                    crate::registry::display_key_of(repo, key),
                    seen_at.to_path_buf(),
                    Some(Gone::Removed),
                    PathBuf::new(),
                ),
            }
        };
        let head = if stale.is_none() && is_stub_head(&head_file) {
            let heads = self.heads.get_or_init(|| heads_from_git(repo));
            heads.get(&path).cloned().unwrap_or(Head::Unknown)
        } else {
            head
        };
        OtherWorktree {
            name,
            path,
            head,
            stale,
        }
    }
}
