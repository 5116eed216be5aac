//! HTTPS on the proxy's own port. A connection whose first byte opens a TLS handshake (0x16)
//! is TLS; anything else is plain HTTP, as before. The name a client asks for (SNI) must be
//! one the proxy serves, under `localhost`: a certificate for it is issued by the user's
//! local authority (`ca.rs`) on first use and kept, a bounded number of them; a client that
//! names nothing, or a name the proxy does not serve, is refused in the handshake and nothing
//! is routed. HTTP/2 or HTTP/1.1 is chosen with the client by ALPN.
//!
//! The authority is read at start and again when its certificate file changes (at most once
//! a second), so `git ports proxy trust` and `untrust --delete` take effect without a
//! restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Duration, Utc};
use rustls::ServerConfig;

use super::ca::{self, Authority};

/// The most certificates kept at once: far more names than a machine's worktrees have, and
/// a bound on what a client naming thousands of them can make the proxy keep.
pub const MAX_CERTIFICATES: usize = 512;

/// What ALPN offers, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The first byte of a TLS connection: a handshake record.
pub const HANDSHAKE: u8 = 0x16;

pub struct Tls {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the certificate file was last looked at, and its modification time then.
    checked: Option<Instant>,
    stamp: Option<SystemTime>,
    authority: Option<Arc<Authority>>,
    /// Why the stored authority is not used, said once per change.
    problem: Option<String>,
    configs: HashMap<String, (Arc<ServerConfig>, DateTime<Utc>)>,
}

impl Tls {
    /// HTTPS with the authority kept in `dir` (the ledger's directory).
    pub fn new(dir: PathBuf) -> Tls {
        let tls = Tls {
            dir,
            state: Mutex::default(),
        };
        if let Ok(mut s) = tls.state.lock() {
            tls.refresh(&mut s);
        }
        tls
    }

    fn refresh(&self, s: &mut State) {
        if s.checked.is_some_and(|t| t.elapsed().as_secs() < 1) {
            return;
        }
        s.checked = Some(Instant::now());
        let files = ca::Files::in_dir(&self.dir);
        let stamp = std::fs::metadata(&files.cert)
            .and_then(|m| m.modified())
            .ok();
        let key_stamp = std::fs::metadata(&files.key)
            .and_then(|m| m.modified())
            .ok();
        let stamp = stamp.max(key_stamp);
        if stamp == s.stamp && (s.authority.is_some() || s.problem.is_some() || stamp.is_none()) {
            return;
        }
        s.stamp = stamp;
        s.configs.clear();
        match ca::load(&self.dir, Utc::now()) {
            Ok(a) => {
                s.authority = a.map(Arc::new);
                s.problem = None;
            }
            Err(e) => {
                let why = e.error(&files).to_string();
                eprintln!("git ports proxy: HTTPS is off: {why}");
                s.authority = None;
                s.problem = Some(why);
            }
        }
    }

    /// The configuration that serves `name` (normalized, and checked by the caller to be a
    /// name the proxy serves), issuing its certificate if need be; `None` when there is no
    /// authority.
    pub fn config_for(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let mut s = self.state.lock().ok()?;
        self.refresh(&mut s);
        let authority = s.authority.clone()?;
        let now = Utc::now();
        if let Some((c, until)) = s.configs.get(name)
            && *until - now > Duration::days(1)
        {
            return Some(c.clone());
        }
        let (chain, key) = match authority.issue(name, now) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("git ports proxy: cannot issue a certificate for {name}: {e}");
                return None;
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .ok()?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(config);
        if s.configs.len() >= MAX_CERTIFICATES {
            s.configs
                .retain(|_, (_, until)| *until - now > Duration::days(1));
            if let Some(k) = s.configs.keys().next().cloned()
                && s.configs.len() >= MAX_CERTIFICATES
            {
                s.configs.remove(&k);
            }
        }
        let until = now + Duration::days(ca::LEAF_DAYS).min(authority.not_after - now);
        s.configs.insert(name.to_string(), (config.clone(), until));
        Some(config)
    }
}

/// Gives no certificate, whatever is asked: rustls then ends the handshake with an alert
/// (`access_denied`), so a client refused its name is told so, not just cut off.
#[derive(Debug)]
struct Refuse;

impl rustls::server::ResolvesServerCert for Refuse {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

/// The configuration a refused handshake is finished with.
pub fn refusal() -> Option<Arc<ServerConfig>> {
    static REFUSAL: OnceLock<Option<Arc<ServerConfig>>> = OnceLock::new();
    REFUSAL
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Refuse));
            Some(Arc::new(config))
        })
        .clone()
}
