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
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use crate::config::is_service_name;

pub const VERSION: u64 = 2;

/// The versions this build reads; older ones are migrated when written.
pub const READS: std::ops::RangeInclusive<u64> = 1..=VERSION;

/// How many names and branches the registry remembers ports for; the one used longest ago
/// is forgotten first.
pub const REMEMBER: usize = 512;

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

/// A key as people read it: bytes that are not UTF-8 as git quotes them (`wt-\377`).
pub fn display_key(key: &str) -> String {
    match key.strip_prefix("/x").and_then(unhex) {
        Some(bytes) => show_bytes(&bytes),
        None => key.to_string(),
    }
}

/// Bytes as text: UTF-8 runs as they are, each other byte as `\ooo`.
pub fn show_bytes(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.push_str(&format!("\\{b:03o}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) || h.is_empty() {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn os_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().into_owned().into_bytes()
    }
}

pub fn os_from_bytes(b: &[u8]) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        OsStr::from_bytes(b).to_os_string()
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(b).into_owned())
    }
}

/// Paths in JSON, losslessly: a string when the path is UTF-8, else `{"hex": "…"}` with its
/// bytes. A path that cannot be written exactly is never written at all.
pub mod os_path {
    use super::*;

    pub fn serialize<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match p.to_str() {
            Some(t) => s.serialize_str(t),
            None => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("hex", &hex(&os_bytes(p.as_os_str())))?;
                m.end()
            }
        }
    }

    struct Visit;

    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = PathBuf;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, or {\"hex\": …} for a path that is not UTF-8")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PathBuf, E> {
            Ok(PathBuf::from(v))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<PathBuf, A::Error> {
            use serde::de::Error;
            let Some(k) = m.next_entry::<String, String>()? else {
                return Err(A::Error::custom("expected {\"hex\": …}"));
            };
            if k.0 != "hex" || m.next_key::<String>()?.is_some() {
                return Err(A::Error::custom("expected {\"hex\": …}"));
            }
            unhex(&k.1)
                .map(|b| PathBuf::from(os_from_bytes(&b)))
                .ok_or_else(|| A::Error::custom(format!("'{}' is not hex bytes", k.1)))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        d.deserialize_any(Visit)
    }
}

/// An optional path in JSON, losslessly, as [`os_path`] writes one; `null` when absent.
pub mod os_path_opt {
    pub fn serialize<S: serde::Serializer>(
        p: &Option<std::path::PathBuf>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => super::os_path::serialize(p, s),
            None => s.serialize_none(),
        }
    }
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

    /// Remembers that `keys` (a worktree's name, and its branch) held `port` for `service`,
    /// forgetting the memory used longest ago past [`REMEMBER`].
    pub fn remember(&mut self, keys: &[String], service: &str, port: u16, at: DateTime<Utc>) {
        for k in keys {
            self.remembered
                .entry(k.clone())
                .or_default()
                .insert(service.to_string(), Remembered { port, at });
        }
        self.evict();
    }

    /// Forgets the memories used longest ago past [`REMEMBER`], in one pass: however many a
    /// file holds (a registry written by hand, or by a build with another bound), the work is
    /// linear in its size.
    pub fn evict(&mut self) {
        let excess = self.remembered.len().saturating_sub(REMEMBER);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(Option<DateTime<Utc>>, &String)> = self
            .remembered
            .iter()
            .map(|(k, m)| (m.values().map(|r| r.at).max(), k))
            .collect();
        by_age.select_nth_unstable(excess - 1);
        let oldest: std::collections::HashSet<String> =
            by_age[..excess].iter().map(|(_, k)| (*k).clone()).collect();
        self.remembered.retain(|k, _| !oldest.contains(k));
    }

    /// Remembers `port` for `key` and `service` unless something is remembered there already
    /// (a registry written before memory existed learns its ports as they are released).
    pub fn remember_if_absent(&mut self, key: &str, service: &str, port: u16, at: DateTime<Utc>) {
        let known = self
            .remembered
            .get(key)
            .is_some_and(|m| m.contains_key(service));
        if !known {
            self.remember(&[key.to_string()], service, port, at);
        }
    }

    /// The port the first of `keys` that remembers one remembers for `service`, with that key.
    pub fn recall<'a>(&self, keys: &'a [String], service: &str) -> Option<(u16, &'a str)> {
        keys.iter().find_map(|k| {
            let r = self.remembered.get(k)?.get(service)?;
            Some((r.port, k.as_str()))
        })
    }

    /// Ports remembered for `service` by any key other than `keys`.
    pub fn remembered_by_others(
        &self,
        keys: &[String],
        service: &str,
    ) -> std::collections::HashSet<u16> {
        self.remembered
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .filter_map(|(_, m)| m.get(service).map(|r| r.port))
            .collect()
    }

    /// Forgets what `keys` remember for `service` (every service when `None`).
    pub fn forget(&mut self, keys: &[String], service: Option<&str>) {
        for k in keys {
            if let Some(m) = self.remembered.get_mut(k) {
                match service {
                    Some(s) => {
                        m.remove(s);
                    }
                    None => m.clear(),
                }
                if m.is_empty() {
                    self.remembered.remove(k);
                }
            }
        }
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
    use crate::allocator::{
        PortRange, Taken, Wishes, first_free, first_free_slot, lowest_free, order, port_order,
    };
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

        /// Random allocate/release sequences over overlapping ranges: no port is ever held
        /// twice, every port lies in its service's range, and each allocation takes the lowest
        /// port no worktree holds.
        #[test]
        fn allocation_invariants(ops in prop::collection::vec((any::<bool>(), 0usize..6, 0usize..3), 1..120)) {
            let services = [
                ("web", PortRange { start: 100, end: 119 }),
                ("api", PortRange { start: 110, end: 129 }),
                ("db", PortRange { start: 125, end: 127 }),
            ];
            let mut reg = Registry::default();
            for (allocate, w, s) in ops {
                let (service, range) = services[s];
                let wt = format!("wt{w}");
                let held_now = reg.worktrees.get(&wt).and_then(|e| e.ports.get(service)).map(|a| a.port);
                if allocate {
                    if held_now.is_some() {
                        continue;
                    }
                    let by_port = reg.by_port();
                    let search = lowest_free(range, |p| by_port.get(&p).map(|_| ()), |_| false);
                    let expected = range.iter().find(|p| reg.holder(*p).is_none());
                    prop_assert_eq!(search.chosen, expected);
                    prop_assert!(search.skipped.iter().all(|(p, t)| *t == Taken::Held(()) && reg.holder(*p).is_some()));
                    if let Some(port) = search.chosen {
                        reg.insert(&wt, std::path::Path::new("/p"), service, Allocation { port, allocated_at: at(0) });
                    }
                } else if let Some(port) = held_now {
                    prop_assert!(reg.remove_port(port).is_some());
                }
                prop_assert_eq!(reg.validate(), Ok(()));
                for h in reg.allocations() {
                    let range = services.iter().find(|(n, _)| *n == h.service).map(|x| x.1);
                    prop_assert!(range.is_some_and(|r| r.contains(h.allocation.port)));
                }
            }
        }

        /// The order wishes give is every offset once, never the reserved one.
        #[test]
        fn wishes_only_reorder(len in 1usize..300, remembered in prop::option::of(0usize..320), first in prop::option::of(any::<usize>()), others in prop::collection::hash_set(0usize..320, 0..40), reserved in prop::option::of(0usize..320)) {
            let w = Wishes { remembered, first, others, reserved };
            let mut got = order(len, &w);
            got.sort_unstable();
            let want: Vec<usize> = (0..len).filter(|k| Some(*k) != reserved).collect();
            prop_assert_eq!(got, want);
        }

        /// Sticky and aligned allocation over overlapping ranges, with releases in between:
        /// no port is ever held twice, every port lies in its service's range, and a slot's
        /// ports are distinct and free.
        #[test]
        fn sticky_and_aligned_allocation_invariants(ops in prop::collection::vec((0u8..3, 0usize..6, 0usize..3), 1..120)) {
            let services = [
                ("web", PortRange { start: 100, end: 119 }),
                ("api", PortRange { start: 110, end: 129 }),
                ("db", PortRange { start: 125, end: 127 }),
            ];
            let mut reg = Registry::default();
            for (op, w, s) in ops {
                let (service, range) = services[s];
                let wt = format!("wt{w}");
                let keys = vec![by_name(&wt)];
                let held_now = reg.worktrees.get(&wt).and_then(|e| e.ports.get(service)).map(|a| a.port);
                match (op, held_now) {
                    (0, None) => {
                        let by_port = reg.by_port();
                        let offset = |p: u16| usize::from(p - range.start);
                        let wishes = Wishes {
                            remembered: reg.recall(&keys, service).filter(|(p, _)| range.contains(*p)).map(|(p, _)| offset(p)),
                            first: Some(w * 7),
                            others: reg.remembered_by_others(&keys, service).into_iter().filter(|p| range.contains(*p)).map(offset).collect(),
                            reserved: (w != 0).then_some(0),
                        };
                        let search = first_free(port_order(range, &wishes), |p| by_port.get(&p).map(|_| ()), |_| false);
                        if let Some(port) = search.chosen {
                            prop_assert!(!by_port.contains_key(&port));
                            reg.insert(&wt, std::path::Path::new("/p"), service, Allocation { port, allocated_at: at(0) });
                            reg.remember(&keys, service, port, at(0));
                        }
                    }
                    (1, None) => {
                        let ranges: Vec<PortRange> = services.iter().map(|x| x.1).collect();
                        let by_port = reg.by_port();
                        if let Some(k) = first_free_slot(&ranges, 0..20, |p| !by_port.contains_key(&p)) {
                            let ports: Vec<u16> = ranges.iter().map(|r| r.start + k as u16).collect();
                            for (i, p) in ports.iter().enumerate() {
                                prop_assert!(ranges[i].contains(*p) && !by_port.contains_key(p) && !ports[..i].contains(p));
                            }
                        }
                    }
                    (_, Some(port)) => {
                        let (key, svc, a) = reg.remove_port(port).expect("held");
                        reg.remember_if_absent(&by_name(&key), &svc, a.port, a.allocated_at);
                    }
                    _ => {}
                }
                prop_assert_eq!(reg.validate(), Ok(()));
                prop_assert_eq!(Registry::parse(&reg.to_json().unwrap_or_default()), Ok(reg.clone()));
                for h in reg.allocations() {
                    let range = services.iter().find(|(n, _)| *n == h.service).map(|x| x.1);
                    prop_assert!(range.is_some_and(|r| r.contains(h.allocation.port)));
                }
            }
        }
    }
}
