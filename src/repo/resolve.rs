//! `--worktree W`: a worktree found by name, path or branch, ambiguity refused.

use super::*;

impl Repo {
    /// `--worktree X` if given, else the current worktree.
    pub fn target(&self, query: Option<&str>) -> Result<Worktree> {
        match query {
            Some(q) => self.resolve(q),
            None => self.current(),
        }
    }

    /// Finds the worktree a user means by `query`: its name, a path (absolute or relative to
    /// the current directory, to it or inside it), or the branch checked out in it. A query
    /// that matches more than one worktree, in any of these ways, is ambiguous.
    pub fn resolve(&self, query: &str) -> Result<Worktree> {
        let mut found: Vec<Worktree> = Vec::new();
        let mut add = |w: Worktree| {
            if !found.iter().any(|f| f.key == w.key) {
                found.push(w);
            }
        };
        let matches = |name: &str, head: &Head| name == query || head.branch() == Some(query);
        if self.all.get().is_some() || self.reftable {
            for w in self
                .worktrees()
                .iter()
                .filter(|w| matches(&w.name, &w.head))
            {
                add(w.clone());
            }
        } else if let Some(w) = self.by_name_alone(query) {
            add(w);
        } else {
            // Names and branches need one HEAD read per worktree, not the whole listing.
            if let Some(m) = self.main.as_ref().filter(|m| matches(&m.name, &m.head)) {
                add(m.clone());
            }
            for name in self.linked_names() {
                let head = read_head(&self.common_dir.join("worktrees").join(&name).join("HEAD"));
                if matches(&crate::registry::display_key(&key_of(&name)), &head) {
                    add(linked_worktree(&self.common_dir, &name));
                }
            }
        }
        if let Ok(p) = fs::canonicalize(query) {
            let deepest = self
                .worktrees()
                .iter()
                .filter_map(|w| {
                    let root = fs::canonicalize(&w.path).ok()?;
                    p.starts_with(&root).then(|| (root.components().count(), w))
                })
                .max_by_key(|(depth, _)| *depth);
            if let Some((_, w)) = deepest {
                add(w.clone());
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::WorktreeNotFound {
                query: query.to_string(),
                known: self.worktrees().iter().map(|w| w.name.clone()).collect(),
            }),
            _ => Err(Error::AmbiguousWorktree {
                query: query.to_string(),
                candidates: found
                    .iter()
                    .map(|w| format!("{} ({})", w.name, w.path.display()))
                    .collect(),
            }),
        }
    }

    /// The worktree named `query`, found without reading every worktree's HEAD, when no branch
    /// has that name (so no other worktree can match it by branch). An unborn branch (a
    /// worktree made with `--orphan`, before its first commit) has no ref yet: a name that
    /// matches nothing here goes on to the full comparison, which reads HEADs and finds it.
    pub(super) fn by_name_alone(&self, query: &str) -> Option<Worktree> {
        if self.branch_may_exist(query) {
            return None;
        }
        let main = self.main.as_ref().filter(|m| m.name == query);
        // The name as git wrote it, compared exactly: on a file system that ignores case,
        // `worktrees/FEATURE` opens `worktrees/Feature`, which is not a worktree of that name.
        let linked = crate::registry::name_of_key(query)
            .filter(|n| self.linked_names().iter().any(|l| l == n))
            .map(|n| linked_worktree(&self.common_dir, &n));
        match (main, linked) {
            (Some(m), None) => Some(m.clone()),
            (None, Some(l)) => Some(l),
            // Both, or neither: the full comparison says which, or that it is ambiguous.
            _ => None,
        }
    }

    /// Whether a branch called `name` may exist, read from the files backend's refs: a loose
    /// ref, or a line of `packed-refs`. When in doubt (a file that cannot be read, a name no
    /// ref can have) it says yes, and names and branches are then compared one by one.
    pub(super) fn branch_may_exist(&self, name: &str) -> bool {
        if self.reftable || name.is_empty() || name.contains("..") || name.starts_with('/') {
            return true;
        }
        let refs = self.common_dir.join("refs/heads").join(name);
        match fs::symlink_metadata(&refs) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return true,
        }
        let packed = match fs::read(self.common_dir.join("packed-refs")) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(_) => return true,
        };
        let wanted = format!(" refs/heads/{name}");
        packed
            .split(|&b| b == b'\n')
            .any(|l| l.ends_with(wanted.as_bytes()))
    }
}
