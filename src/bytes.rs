//! Bytes from disk, kept exact: shown as git shows them (`\\ooo` for a byte that is not
//! UTF-8), and written to JSON losslessly (`{"hex": …}` for a path that is not UTF-8).

use serde::Deserializer;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

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

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(h: &str) -> Option<Vec<u8>> {
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
