//! The registry's JSON model: which worktree holds which port for which service.
//!
//! ```json
//! { "version": 1,
//!   "worktrees": {
//!     "/":         { "path": std::path::Path::new("/src/app"),           "ports": { "web": { "port": 8000, "allocated_at": "2026-01-15T10:30:00Z" } } },
//!     "feature-x": { "path": "/src/app-feature-x", "ports": { "web": { "port": 8001, "allocated_at": "…" } } } } }
//! ```
//! Worktrees are keyed by git's admin name (the folder under `<common dir>/worktrees/`); the main
//! worktree, which has none, is keyed [`MAIN_KEY`], which no admin name can be.
//!
//! Version 2 adds `remembered`: the port each worktree name (`name:<key>`) and each branch
//! (`branch:<name>`) last held for each service, so a worktree made again gets its ports back.
//! A version 1 file is read as version 2 with nothing remembered, and written as version 2.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};

use crate::bytes::{hex, os_bytes, os_from_bytes, os_path, show_bytes, unhex};
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use crate::config::is_service_name;

pub const VERSION: u64 = 2;

/// The versions this build reads; older ones are migrated when written.
pub const READS: std::ops::RangeInclusive<u64> = 1..=VERSION;

/// The registry key of the main worktree: git's admin names never contain a slash.
pub const MAIN_KEY: &str = "/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub version: u64,
    #[serde(default, deserialize_with = "unique")]
    pub worktrees: BTreeMap<String, Entry>,
    /// `name:<worktree key>` or `branch:<branch>` → service → the port it last held.
    #[serde(default, deserialize_with = "unique")]
    pub remembered: BTreeMap<String, BTreeMap<String, Remembered>>,
}

/// A port a name or branch held, and when it was last given it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    #[serde(deserialize_with = "port")]
    pub port: u16,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// The memory key of a worktree's name.
pub fn by_name(key: &str) -> String {
    format!("name:{key}")
}

/// The memory key of a branch.
pub fn by_branch(branch: &str) -> String {
    format!("branch:{branch}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Where the worktree was when it was last given a port.
    #[serde(with = "os_path")]
    pub path: PathBuf,
    #[serde(default, deserialize_with = "unique")]
    pub ports: BTreeMap<String, Allocation>,
}

/// The registry key of a linked worktree's admin name. A name that is UTF-8 is its own key;
/// any other is `/x` and its bytes in hex, which no admin name can be (they never hold `/`),
/// so every name has one key and every key one name.
pub fn key_of(name: &OsStr) -> String {
    match name.to_str() {
        Some(s) => s.to_string(),
        None => format!("/x{}", hex(&os_bytes(name))),
    }
}

/// The admin name a key stands for; `None` for the main worktree's key and for keys that are
/// no admin name.
pub fn name_of_key(key: &str) -> Option<OsString> {
    if let Some(h) = key.strip_prefix("/x") {
        return unhex(h).map(|b| os_from_bytes(&b));
    }
    (!key.contains('/') && !key.is_empty()).then(|| OsString::from(key))
}

/// A key as people read it: bytes that are not UTF-8 as git quotes them (`wt-\377`). The
/// main worktree's key, which is no name, is never shown: see [`display_key_of`].
pub fn display_key(key: &str) -> String {
    match key.strip_prefix("/x").and_then(unhex) {
        Some(bytes) => show_bytes(&bytes),
        None => key.to_string(),
    }
}

/// A key of the repository whose common dir is `common` as people read it: the main
/// worktree by its directory's name (`shop` for `/src/shop/.git`, `shop` for a bare
/// `/srv/shop.git`), a linked one as [`display_key`] shows it.
pub fn display_key_of(common: &std::path::Path, key: &str) -> String {
    if key != MAIN_KEY {
        return display_key(key);
    }
    let dir = crate::ledger::repo_dir(common);
    let name = dir
        .file_name()
        .map(crate::bytes::os_bytes)
        .unwrap_or_default();
    let name = name.strip_suffix(b".git").unwrap_or(&name);
    show_bytes(name)
}

/// A JSON object read into a map, refusing a key that appears twice: serde would keep the
/// last silently, and the next write would drop the other for good.
pub fn unique<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct Visit<K, V>(PhantomData<(K, V)>);
    impl<'de, K, V> serde::de::Visitor<'de> for Visit<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(k) = m.next_key::<K>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("duplicate key '{k}'")));
                }
                let v = m.next_value()?;
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visit(PhantomData))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    #[serde(deserialize_with = "port")]
    pub port: u16,
    #[serde(with = "rfc3339")]
    pub allocated_at: DateTime<Utc>,
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = i64::deserialize(d)?;
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| serde::de::Error::custom(format!("port {n} is outside 1-65535")))
}

/// Timestamps are written as `2026-01-15T10:30:00Z`: whole seconds, UTC.
mod rfc3339 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("'{s}' is not an RFC 3339 time: {e}")))
    }
}

/// Who holds a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder<'a> {
    pub worktree: &'a str,
    pub service: &'a str,
    pub allocation: &'a Allocation,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            version: VERSION,
            worktrees: BTreeMap::new(),
            remembered: BTreeMap::new(),
        }
    }
}

impl Registry {
    /// Parses and validates registry text. The error says what is wrong, with line and column
    /// for JSON errors.
    pub fn parse(text: &str) -> Result<Registry, String> {
        #[derive(Deserialize)]
        struct Probe {
            version: Option<serde_json::Value>,
        }
        // serde would name the internal probe type for a top level that is not an object.
        if let Some((i, c)) = text.char_indices().find(|(_, c)| !c.is_whitespace())
            && c != '{'
        {
            let line = text[..i].matches('\n').count() + 1;
            let column = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
            return Err(format!(
                "expected a JSON object, found `{c}` at line {line} column {column}"
            ));
        }
        let unsupported = |v: &dyn std::fmt::Display| {
            format!("unsupported version {v} (this git-ports reads version {VERSION})")
        };
        // One pass over the text; only when it fails is it read again, for the version, which
        // explains a newer file better than whatever field this build does not know.
        let mut registry: Registry = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let probe: Probe = serde_json::from_str(text).map_err(|e| e.to_string())?;
                return Err(match probe.version {
                    None => "missing field `version`".into(),
                    Some(v) if !v.as_u64().is_some_and(|v| READS.contains(&v)) => unsupported(&v),
                    Some(_) => e.to_string(),
                });
            }
        };
        if !READS.contains(&registry.version) {
            return Err(unsupported(&registry.version));
        }
        registry.validate()?;
        // Version 1 had nothing remembered: it is version 2 with an empty memory.
        registry.version = VERSION;
        Ok(registry)
    }

    /// Checks what serde cannot: names, and that no port is held twice.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen: HashMap<u16, (&str, &str)> = HashMap::new();
        for (wt, entry) in &self.worktrees {
            if wt != MAIN_KEY && name_of_key(wt).is_none() {
                return Err(format!("invalid worktree key '{wt}'"));
            }
            for (service, a) in &entry.ports {
                if !is_service_name(service) {
                    return Err(format!("worktree '{wt}': invalid service name '{service}'"));
                }
                if let Some((w0, s0)) = seen.insert(a.port, (wt, service)) {
                    return Err(format!(
                        "port {} is held twice: by '{w0}' ({s0}) and by '{wt}' ({service})",
                        a.port
                    ));
                }
            }
        }
        for (key, services) in &self.remembered {
            let ok = key
                .strip_prefix("name:")
                .is_some_and(|k| k == MAIN_KEY || name_of_key(k).is_some())
                || key.strip_prefix("branch:").is_some_and(|b| !b.is_empty());
            if !ok {
                return Err(format!("invalid remembered key '{key}'"));
            }
            if let Some(s) = services.keys().find(|s| !is_service_name(s)) {
                return Err(format!("remembered '{key}': invalid service name '{s}'"));
            }
        }
        Ok(())
    }

    /// The file's text. Fails rather than give text that does not say exactly this registry.
    pub fn to_json(&self) -> Result<String, String> {
        let mut s = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        s.push('\n');
        Ok(s)
    }

    /// Every allocation, as (worktree key, service, allocation).
    pub fn allocations(&self) -> impl Iterator<Item = Holder<'_>> {
        self.worktrees.iter().flat_map(|(wt, e)| {
            e.ports.iter().map(move |(service, allocation)| Holder {
                worktree: wt,
                service,
                allocation,
            })
        })
    }

    /// A port → holder index for searches.
    pub fn by_port(&self) -> HashMap<u16, Holder<'_>> {
        self.allocations().map(|h| (h.allocation.port, h)).collect()
    }

    pub fn holder(&self, port: u16) -> Option<Holder<'_>> {
        self.allocations().find(|h| h.allocation.port == port)
    }

    pub fn total(&self) -> usize {
        self.worktrees.values().map(|e| e.ports.len()).sum()
    }

    /// Records an allocation. The caller has checked the port is free.
    pub fn insert(&mut self, worktree: &str, path: &std::path::Path, service: &str, a: Allocation) {
        let entry = self
            .worktrees
            .entry(worktree.to_string())
            .or_insert_with(|| Entry {
                path: path.to_path_buf(),
                ports: BTreeMap::new(),
            });
        entry.path = path.to_path_buf();
        entry.ports.insert(service.to_string(), a);
    }

    /// Removes the allocation of `port`, dropping a worktree left with none. Returns what it held.
    pub fn remove_port(&mut self, port: u16) -> Option<(String, String, Allocation)> {
        let (wt, service) = self
            .holder(port)
            .map(|h| (h.worktree.to_string(), h.service.to_string()))?;
        let entry = self.worktrees.get_mut(&wt)?;
        let a = entry.ports.remove(&service)?;
        if entry.ports.is_empty() {
            self.worktrees.remove(&wt);
        }
        Some((wt, service, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-15T10:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn round_trips() {
        let mut r = Registry::default();
        r.insert(
            MAIN_KEY,
            std::path::Path::new("/src/app"),
            "web",
            Allocation {
                port: 8000,
                allocated_at: at(),
            },
        );
        r.insert(
            "feature-x",
            std::path::Path::new("/src/fx"),
            "db",
            Allocation {
                port: 5432,
                allocated_at: at(),
            },
        );
        let text = r.to_json().unwrap_or_default();
        assert!(
            text.contains("\"allocated_at\": \"2024-01-15T10:30:00Z\""),
            "{text}"
        );
        assert_eq!(Registry::parse(&text), Ok(r.clone()));
        assert_eq!(
            r.remove_port(5432).map(|x| x.0),
            Some("feature-x".to_string())
        );
        assert!(!r.worktrees.contains_key("feature-x"));
    }

    #[test]
    fn rejects_bad_shapes() {
        let a = r#""allocated_at": "2024-01-15T10:30:00Z""#;
        let cases = [
            ("", "EOF"),
            ("[]", "expected a JSON object, found `[` at line 1 column 1"),
            ("{", "EOF"),
            (
                r#"{"version": 3, "worktrees": {}}"#,
                "unsupported version 3",
            ),
            (r#"{"worktrees": {}}"#, "missing field `version`"),
            (r#"{"version": 1, "worktrees": []}"#, "invalid type"),
            (
                &format!(
                    r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"web":{{"port":0,{a}}}}}}}}}}}"#
                ),
                "port 0 is outside",
            ),
            (
                &format!(
                    r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"web":{{"port":70000,{a}}}}}}}}}}}"#
                ),
                "port 70000 is outside",
            ),
            (
                &format!(
                    r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"web":{{"port":"80",{a}}}}}}}}}}}"#
                ),
                "invalid type",
            ),
            (
                &format!(
                    r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"web":{{"port":8000,{a}}},"api":{{"port":8000,{a}}}}}}}}}}}"#
                ),
                "held twice",
            ),
            (
                &format!(
                    r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"Web":{{"port":8000,{a}}}}}}}}}}}"#
                ),
                "invalid service name",
            ),
            (
                r#"{"version":1,"worktrees":{"a":{"path":"/a","ports":{"web":{"port":8000,"allocated_at":"yesterday"}}}}}"#,
                "RFC 3339",
            ),
        ];
        for (text, want) in cases {
            match Registry::parse(text) {
                Ok(_) => panic!("parsed: {text}"),
                Err(e) => assert!(e.contains(want), "{text}: {e}"),
            }
        }
        assert!(Registry::parse("{\n  \"version\": 1,\n  x").is_err_and(|e| e.contains("line 3")));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    fn registry() -> impl Strategy<Value = Registry> {
        let key = prop_oneof![Just(MAIN_KEY.to_string()), "[a-z0-9._-]{1,12}"];
        let service = "[a-z][a-z0-9-]{0,8}";
        prop::collection::vec(
            (key, service, 1u16.., 0i64..4_000_000_000, "[ -~]{0,20}"),
            0..30,
        )
        .prop_map(|items| {
            let mut r = Registry::default();
            for (k, s, port, t, path) in items {
                if r.holder(port).is_none() {
                    r.insert(
                        &k,
                        std::path::Path::new(&path),
                        &s,
                        Allocation {
                            port,
                            allocated_at: at(t),
                        },
                    );
                }
            }
            r
        })
    }

    proptest! {
        #[test]
        fn serialize_then_parse_round_trips(r in registry()) {
            prop_assert_eq!(Registry::parse(&r.to_json().unwrap_or_default()), Ok(r));
        }

        #[test]
        fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Registry::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_damaged_registries(r in registry(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let text = r.to_json().unwrap_or_default().into_bytes();
            let i = cut.index(text.len().max(1)).min(text.len().saturating_sub(1));
            let mut damaged = text.clone();
            if !damaged.is_empty() {
                damaged[i] = byte;
            }
            let _ = Registry::parse(&String::from_utf8_lossy(&damaged));
            let _ = Registry::parse(&String::from_utf8_lossy(&text[..i]));
        }
    }
}
