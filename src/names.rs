//! A host name for every worktree: `{worktree}.{repo}.localhost`, each label DNS-safe, and
//! unique machine-wide because the ledger records who holds each name, as it records ports.
//!
//! `*.localhost` is loopback (RFC 6761): browsers and curl resolve it themselves, so a
//! worktree's URL (`http://feature-x.shop.localhost:8001`) keeps its cookies apart from every
//! other worktree's with nothing running; `git ports proxy` routes the same names without the
//! port. A service other than the default one (`ports.hostService`, web) is addressed with its
//! name in front: `api.feature-x.shop.localhost`. `{repo}.localhost` is the repository's one
//! stable origin, pointed at one worktree (the main one until `git ports point`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bytes::os_path;

/// What names a repository's worktrees: the template, the repository's own name, and its
/// services (whose names in front of the origin are the origin's).
#[derive(Debug, Clone, Default)]
pub struct Naming {
    pub template: Template,
    /// The repository's name as people know it (its directory's), as bytes.
    pub repo: Vec<u8>,
    /// The service a bare host name means (`ports.hostService`).
    pub service: String,
    /// Every service the repository knows.
    pub services: Vec<String>,
}

/// The suffix every name ends with.
pub const SUFFIX: &str = "localhost";
/// The shape of a worktree's host when `ports.hostTemplate` is not set.
pub const DEFAULT_TEMPLATE: &str = "{worktree}.{repo}.localhost";
/// A DNS label's limit, in bytes.
const LABEL_MAX: usize = 63;
/// A DNS name's limit, in bytes.
pub const NAME_MAX: usize = 253;

/// `raw` as a DNS label: lowercase ASCII letters, digits and `-`, no `-` at either end, at
/// most 63 bytes. Anything else becomes `-` (runs of them one); a name with nothing DNS-safe
/// in it becomes `x-` and a hash of its bytes, so it still has a label of its own.
pub fn label(raw: &[u8]) -> String {
    let mut out = String::new();
    for &b in raw {
        let c = b.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c as char);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(LABEL_MAX);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        return format!("x-{:08x}", fnv(raw) as u32);
    }
    out
}

/// A worktree's name without the repository's name it repeats: `webapp-alpha` of repository
/// `webapp` is `alpha` (and so are `webapp_alpha`, `webapp.alpha` and `alpha-webapp`), so a
/// sibling folder named after the repository, the most common layout, gives
/// `alpha.webapp.localhost`, not `webapp-alpha.webapp.localhost`. A name that is only the
/// repository's is kept whole.
pub fn without_repo<'a>(name: &'a [u8], repo: &[u8]) -> &'a [u8] {
    let sep = |b: u8| matches!(b, b'-' | b'_' | b'.');
    let n = repo.len();
    if n == 0 || name.len() <= n + 1 {
        return name;
    }
    if name[..n].eq_ignore_ascii_case(repo) && sep(name[n]) {
        return &name[n + 1..];
    }
    let cut = name.len() - n;
    if name[cut..].eq_ignore_ascii_case(repo) && sep(name[cut - 1]) {
        return &name[..cut - 1];
    }
    name
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `label` with `-N` at its end, within `max` bytes.
fn numbered(label: &str, n: usize, max: usize) -> String {
    let tail = format!("-{n}");
    let keep = label.len().min(max.saturating_sub(tail.len()));
    format!("{}{tail}", label[..keep].trim_end_matches('-'))
}

/// `label` cut to at most `max` bytes, without a `-` at its end.
fn within(label: &str, max: usize) -> String {
    label[..label.len().min(max)]
        .trim_end_matches('-')
        .to_string()
}

/// A validated `ports.hostTemplate`: `{worktree}` and `{repo}` in DNS-safe text that ends in
/// `.localhost`, each label within 63 bytes and the whole within 253 however short the
/// names put in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

impl Default for Template {
    fn default() -> Self {
        Template(DEFAULT_TEMPLATE.to_string())
    }
}

impl std::str::FromStr for Template {
    type Err = String;
    fn from_str(t: &str) -> Result<Template, String> {
        if !t.contains("{worktree}") {
            return Err("needs {worktree}, which makes each worktree's name its own".into());
        }
        let bare = t.replace("{worktree}", "w").replace("{repo}", "r");
        if bare.contains(['{', '}']) {
            return Err("knows only {worktree} and {repo}".into());
        }
        if !bare.ends_with(&format!(".{SUFFIX}")) {
            return Err(format!(
                "must end in .{SUFFIX}, which resolves to this machine"
            ));
        }
        if !bare
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
            || !bare
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err("is not a DNS name: use lowercase letters, digits, '-' and '.'".into());
        }
        // With a one-byte name in each place: what the template itself takes up.
        if let Some(l) = bare.split('.').find(|l| l.len() > LABEL_MAX) {
            return Err(format!(
                "has a label of {} bytes ({l}); DNS allows {LABEL_MAX}",
                l.len()
            ));
        }
        if bare.len() > NAME_MAX {
            return Err(format!(
                "is {} bytes long; a DNS name may have {NAME_MAX}",
                bare.len()
            ));
        }
        Ok(Template(t.to_string()))
    }
}

impl Template {
    /// The host for these labels; `None` when it would be longer than DNS allows.
    pub fn render(&self, worktree: &str, repo: &str) -> Option<String> {
        let host = self
            .0
            .replace("{worktree}", worktree)
            .replace("{repo}", repo);
        (host.len() <= NAME_MAX && host.split('.').all(|l| l.len() <= LABEL_MAX)).then_some(host)
    }

    /// The longest worktree label that fits with repository label `repo`: every label of
    /// the host within 63 bytes, the host within 253.
    pub fn room(&self, repo: &str) -> usize {
        let fits = |n: usize| self.render(&"w".repeat(n), repo).is_some();
        (0..=LABEL_MAX).rev().find(|&n| fits(n)).unwrap_or(0)
    }
}

/// A repository's name in the ledger: its label, and the worktree its origin points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoName {
    #[serde(with = "os_path")]
    pub repo: PathBuf,
    pub label: String,
    /// The worktree (registry key) `{label}.localhost` routes to; the main worktree when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// The service a bare host name means here (`ports.hostService`), when not web.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The service a bare name means when `ports.hostService` is not set.
pub const DEFAULT_SERVICE: &str = "web";

impl RepoName {
    /// The service a bare host of this repository means.
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or(DEFAULT_SERVICE)
    }
}

/// Who holds a host name: a worktree of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostClaim {
    #[serde(with = "os_path")]
    pub repo: PathBuf,
    /// The worktree's registry key.
    pub worktree: String,
}

/// The names part of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<RepoName>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostClaim>,
}

/// The hosts of one repository's worktrees, by registry key.
pub type Hosts = BTreeMap<String, String>;

/// The host of `service` of a worktree whose host is `host`: the bare host for the default
/// service, `{service}.{host}` for the others.
pub fn service_host(host: &str, service: &str, default_service: &str) -> String {
    if service == default_service {
        host.to_string()
    } else {
        format!("{service}.{host}")
    }
}

/// The origin host of a repository label.
pub fn origin(label: &str) -> String {
    format!("{label}.{SUFFIX}")
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.repos.is_empty() && self.hosts.is_empty()
    }

    pub fn repo(&self, repo: &Path) -> Option<&RepoName> {
        self.repos.iter().find(|r| r.repo == repo)
    }

    /// Whether `host` is anyone's: a worktree's name or a repository's origin.
    fn taken(&self, host: &str) -> bool {
        self.hosts.contains_key(host) || self.repos.iter().any(|r| origin(&r.label) == host)
    }

    /// The hosts of `repo`'s worktrees.
    pub fn hosts_for(&self, repo: &Path) -> Hosts {
        self.hosts
            .iter()
            .filter(|(_, c)| c.repo == repo)
            .map(|(h, c)| (c.worktree.clone(), h.clone()))
            .collect()
    }

    /// The host of worktree `key` of `repo`, if it has one.
    pub fn host_of(&self, repo: &Path, key: &str) -> Option<&str> {
        self.hosts
            .iter()
            .find(|(_, c)| c.repo == repo && c.worktree == key)
            .map(|(h, _)| h.as_str())
    }

    /// Drops the hosts of `repo`'s worktrees other than `keep` (registry keys): a change
    /// makes its new names before it writes the registry, and drops names after, as it does
    /// claims. An origin pointed at a worktree that is not kept points at the main worktree
    /// again (the next worktree git gives that name may be anything): its host is returned,
    /// with the worktree it pointed at, so the change can say so.
    pub fn release_rest(
        &mut self,
        repo: &Path,
        keep: impl Fn(&str) -> bool,
    ) -> Option<(String, String)> {
        self.hosts
            .retain(|_, c| c.repo != repo || keep(&c.worktree));
        let r = self.repos.iter_mut().find(|r| r.repo == repo)?;
        let gone = r.point.as_deref().filter(|k| !keep(k))?.to_string();
        r.point = None;
        Some((origin(&r.label), gone))
    }

    /// Whether `host` lies under the origin of a repository other than `repo`
    /// (`x.shop.localhost` under `shop.localhost`): only shop's template makes such names.
    fn under_other_origin(&self, host: &str, repo: &Path) -> bool {
        self.repos
            .iter()
            .any(|r| r.repo != repo && host.ends_with(&format!(".{}", origin(&r.label))))
    }

    /// Gives `repo` a label (its own, or the first `-N` of it nobody has) and every one of
    /// `worktrees` (registry key, name) a host, keeping every name already given. Names
    /// never change hands: a name held by another repository or worktree is skipped for the
    /// next number.
    pub fn name_all(
        &mut self,
        repo: &Path,
        repo_raw: &[u8],
        worktrees: &[(String, Vec<u8>)],
        naming: &Naming,
    ) {
        let (template, service) = (&naming.template, naming.service.as_str());
        if worktrees.is_empty() {
            return;
        }
        let service = (service != DEFAULT_SERVICE).then(|| service.to_string());
        if let Some(r) = self.repos.iter_mut().find(|r| r.repo == repo) {
            r.service = service.clone();
        }
        let repo_label = match self.repo(repo) {
            Some(r) => r.label.clone(),
            None => {
                let base = label(repo_raw);
                // A label whose origin is someone's name, or would put another repository's
                // names under it, is taken.
                let free = |l: &str| {
                    let o = origin(l);
                    let under = format!(".{o}");
                    !self.repos.iter().any(|r| r.label == l)
                        && !self
                            .hosts
                            .iter()
                            .any(|(h, c)| *h == o || (c.repo != repo && h.ends_with(&under)))
                };
                let chosen = std::iter::once(base.clone())
                    .chain((2..10_000).map(|n| numbered(&base, n, LABEL_MAX)))
                    .find(|l| free(l))
                    .unwrap_or(base);
                self.repos.push(RepoName {
                    repo: repo.to_path_buf(),
                    label: chosen.clone(),
                    point: None,
                    service: service.clone(),
                });
                chosen
            }
        };
        let named: std::collections::HashSet<&str> = self
            .hosts
            .values()
            .filter(|c| c.repo == repo)
            .map(|c| c.worktree.as_str())
            .collect();
        let new: Vec<&(String, Vec<u8>)> = worktrees
            .iter()
            .filter(|(k, _)| !named.contains(k.as_str()))
            .collect();
        // `{service}.{origin}` is the origin's service: never a worktree's name.
        let own_origin = format!(".{}", origin(&repo_label));
        let reserved = |h: &str| {
            h.strip_suffix(&own_origin)
                .is_some_and(|first| naming.services.iter().any(|s| s == first))
        };
        if new.is_empty() {
            return;
        }
        let room = template.room(&repo_label);
        for (key, raw) in new {
            if room == 0 {
                break;
            }
            let base = within(&label(without_repo(raw, repo_raw)), room);
            let base = if base.is_empty() {
                "w".to_string()
            } else {
                base
            };
            let host = std::iter::once(base.clone())
                .chain((2..10_000).map(|n| numbered(&base, n, room)))
                .filter_map(|l| template.render(&l, &repo_label))
                .find(|h| !self.taken(h) && !reserved(h) && !self.under_other_origin(h, repo));
            if let Some(host) = host {
                self.hosts.insert(
                    host,
                    HostClaim {
                        repo: repo.to_path_buf(),
                        worktree: key.clone(),
                    },
                );
            }
        }
    }

    /// Drops the names of repositories `gone` says are certainly gone, and of worktrees
    /// their registry no longer has.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path, Option<&str>) -> bool) {
        self.hosts.retain(|_, c| keep(&c.repo, Some(&c.worktree)));
        self.repos.retain(|r| keep(&r.repo, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_safe_and_never_empty() {
        assert_eq!(label(b"Feature_X"), "feature-x");
        assert_eq!(label(b"--a..b--"), "a-b");
        assert_eq!(label("café".as_bytes()), "caf");
        assert!(label("日本".as_bytes()).starts_with("x-"));
        assert_ne!(label("日本".as_bytes()), label("中国".as_bytes()));
        assert_eq!(label(&[b'a'; 100]).len(), 63);
        assert_eq!(numbered(&"a".repeat(63), 12, LABEL_MAX).len(), 63);
        assert_eq!(within("ab-cd", 3), "ab");
        for (name, bare) in [
            ("webapp-alpha", "alpha"),
            ("WebApp_alpha", "alpha"),
            ("webapp.alpha", "alpha"),
            ("alpha-webapp", "alpha"),
            ("webapp", "webapp"),
            ("webapp-", "webapp-"),
            ("webappalpha", "webappalpha"),
        ] {
            assert_eq!(
                without_repo(name.as_bytes(), b"webapp"),
                bare.as_bytes(),
                "{name}"
            );
        }
    }

    #[test]
    fn templates_are_checked() {
        assert!("{worktree}.{repo}.localhost".parse::<Template>().is_ok());
        assert!("{repo}-{worktree}.localhost".parse::<Template>().is_ok());
        assert!("{repo}.localhost".parse::<Template>().is_err());
        assert!("{worktree}.example.com".parse::<Template>().is_err());
        assert!("{worktree}.{branch}.localhost".parse::<Template>().is_err());
        assert!("{worktree}..localhost".parse::<Template>().is_err());
        assert!("{worktree}.Shop.localhost".parse::<Template>().is_err());
        let long = format!("{{worktree}}-{}.localhost", "a".repeat(62));
        assert!(
            long.parse::<Template>()
                .is_err_and(|e| e.contains("DNS allows 63"))
        );
        let fits = format!("{{worktree}}-{}.localhost", "a".repeat(60));
        let t: Template = fits.parse().expect("fits");
        assert_eq!(t.room("r"), 2);
        assert!(
            "{worktree}.{repo}.localhost"
                .parse::<Template>()
                .is_ok_and(|t| t.room("shop") == 63)
        );
    }

    #[test]
    fn colliding_names_get_distinct_hosts_that_stick() {
        let t = Naming {
            service: "web".into(),
            services: vec!["web".into(), "api".into()],
            ..Naming::default()
        };
        let mut n = Names::default();
        let wts = |names: &[&str]| -> Vec<(String, Vec<u8>)> {
            names
                .iter()
                .map(|s| (s.to_string(), s.as_bytes().to_vec()))
                .collect()
        };
        n.name_all(
            Path::new("/a/shop/.git"),
            b"shop",
            &wts(&["main", "Feature.X"]),
            &t,
        );
        n.name_all(
            Path::new("/b/shop/.git"),
            b"shop",
            &wts(&["main", "feature_x"]),
            &t,
        );
        assert_eq!(
            n.host_of(Path::new("/a/shop/.git"), "Feature.X"),
            Some("feature-x.shop.localhost")
        );
        assert_eq!(
            n.host_of(Path::new("/b/shop/.git"), "feature_x"),
            Some("feature-x.shop-2.localhost")
        );
        let before = n.clone();
        n.name_all(
            Path::new("/a/shop/.git"),
            b"shop",
            &wts(&["main", "Feature.X"]),
            &t,
        );
        assert_eq!(n, before, "names stay as they are");
        // Two worktrees whose names make one label.
        n.name_all(
            Path::new("/a/shop/.git"),
            b"shop",
            &wts(&["main", "Feature.X", "feature x"]),
            &t,
        );
        assert_eq!(
            n.host_of(Path::new("/a/shop/.git"), "feature x"),
            Some("feature-x-2.shop.localhost")
        );
        n.release_rest(Path::new("/a/shop/.git"), |k| k == "main");
        assert_eq!(n.host_of(Path::new("/a/shop/.git"), "Feature.X"), None);
        assert!(n.host_of(Path::new("/b/shop/.git"), "feature_x").is_some());
        // A worktree named after a service does not take the origin's name for it.
        n.name_all(
            Path::new("/a/shop/.git"),
            b"shop",
            &wts(&["main", "api"]),
            &t,
        );
        assert_eq!(
            n.host_of(Path::new("/a/shop/.git"), "api"),
            Some("api-2.shop.localhost")
        );
        // Another repository's template cannot put names under shop's origin.
        let fixed = Naming {
            template: "{worktree}.shop.localhost".parse().expect("template"),
            ..t.clone()
        };
        n.name_all(Path::new("/c/other/.git"), b"other", &wts(&["zz"]), &fixed);
        assert_eq!(n.host_of(Path::new("/c/other/.git"), "zz"), None);
        // An origin pointed at a worktree that goes points at the main worktree again.
        if let Some(r) = n.repos.iter_mut().find(|r| r.label == "shop") {
            r.point = Some("api".into());
        }
        assert_eq!(
            n.release_rest(Path::new("/a/shop/.git"), |k| k == "main"),
            Some(("shop.localhost".into(), "api".into()))
        );
        assert_eq!(
            n.repo(Path::new("/a/shop/.git"))
                .and_then(|r| r.point.clone()),
            None
        );
    }
}
