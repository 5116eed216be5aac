//! The proxy's local certificate authority: one per user, beside the ledger, that can sign
//! only local names. Its certificate carries X.509 name constraints, marked critical, that
//! permit the DNS names `localhost` and `*.localhost` and the loopback addresses and nothing
//! else, so a verifier refuses anything it signs for another name, even with its key stolen;
//! its basic constraints allow no intermediate below it, and its extended key usage is server
//! authentication alone. The proxy issues a short-lived certificate per name from it, on
//! demand (see `tls.rs`).
//!
//! Files: `proxy-ca.pem` (the certificate: public, what browsers and `curl --cacert` are
//! given) and `proxy-ca-key.pem` (its key: readable by its owner alone, and refused when it is
//! not). The key is written first, then the certificate: a crash between the two leaves a
//! key without a certificate, which counts as no authority and is replaced by the next
//! `trust`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};
use crate::fault::Target;

pub const CERT_FILE: &str = "proxy-ca.pem";
pub const KEY_FILE: &str = "proxy-ca-key.pem";

/// How long an authority is valid: long enough not to be a chore, short enough that one
/// forgotten on a machine stops being trusted on its own.
pub const CA_DAYS: i64 = 825;
/// How long a certificate the proxy issues is valid; it is issued again a day before.
pub const LEAF_DAYS: i64 = 7;

/// What every certificate of the authority may name, in the name constraints: `localhost`,
/// which RFC 5280 matches with every name under it, and `.localhost`, which some verifiers
/// read as "only the names under it"; and the loopback addresses.
pub const PERMITTED_DNS: [&str; 2] = ["localhost", ".localhost"];

/// The authority, read from its files.
pub struct Authority {
    pub cert_path: PathBuf,
    pub der: CertificateDer<'static>,
    /// SHA-256 of the certificate, as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: String,
    pub not_after: DateTime<Utc>,
    key: KeyPair,
}

/// Where an authority's files are in `dir` (the ledger's directory).
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
        }
    }
}

/// Why a stored authority cannot be used.
#[derive(Debug)]
pub enum Unusable {
    /// The key can be read by others, or is another user's.
    NotPrivate(Error),
    /// The files do not hold an authority of ours: unreadable, not PEM, not a CA, without
    /// our name constraints, or a key that is not the certificate's.
    Corrupt(String),
    Expired(DateTime<Utc>),
}

impl Unusable {
    /// The error a command gives, with the fix.
    pub fn error(self, files: &Files) -> Error {
        let at = crate::output::shell_quote(&files.cert.display().to_string());
        match self {
            Unusable::NotPrivate(e) => e,
            Unusable::Corrupt(why) => Error::Usage(format!(
                "the proxy's certificate authority {at} cannot be used: {why}; `git ports proxy trust --renew` makes a new one (and `git ports proxy untrust` first removes the old one where it was trusted)"
            )),
            Unusable::Expired(when) => Error::Usage(format!(
                "the proxy's certificate authority {at} expired on {}; `git ports proxy trust --renew` makes and trusts a new one",
                when.format("%Y-%m-%d")
            )),
        }
    }
}

/// The key file must be this user's and readable by no one else: whoever reads it can make
/// certificates every browser that trusts the authority accepts for local names.
pub fn check_key(path: &Path) -> std::result::Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = std::fs::metadata(path) else {
            return Ok(());
        };
        let shown = crate::output::shell_quote(&path.display().to_string());
        if let Some(me) = crate::machine::my_uid()
            && m.uid() != me
        {
            return Err(Error::NotPrivate {
                path: path.to_path_buf(),
                rule: "a key of this user's that nobody else can read".to_string(),
                reason: format!("belongs to uid {}, not to this user (uid {me})", m.uid()),
                fix: format!(
                    "remove it and run `git ports proxy trust --renew`, or, if it is yours, `chown {me} {shown}`"
                ),
            });
        }
        if m.mode() & 0o077 != 0 {
            return Err(Error::NotPrivate {
                path: path.to_path_buf(),
                rule: "a key of this user's that nobody else can read".to_string(),
                reason: format!(
                    "can be read by other users (mode {:o}): whoever reads it can make certificates for local names your browsers accept",
                    m.mode() & 0o777
                ),
                fix: format!(
                    "`chmod 600 {shown}`, or `git ports proxy trust --renew` for a new one"
                ),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The authority stored in `dir`, if there is one (both files). `now` decides expiry.
pub fn load(dir: &Path, now: DateTime<Utc>) -> std::result::Result<Option<Authority>, Unusable> {
    let files = Files::in_dir(dir);
    if !files.cert.exists() || !files.key.exists() {
        return Ok(None);
    }
    check_key(&files.key).map_err(Unusable::NotPrivate)?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| Unusable::Corrupt(format!("{}: {e}", p.display())))
    };
    let (cert_pem, key_pem) = (read(&files.cert)?, read(&files.key)?);
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| Unusable::Corrupt(format!("its key does not read ({e})")))?;
    let der = pem_der(&cert_pem)
        .ok_or_else(|| Unusable::Corrupt("its certificate is not PEM".to_string()))?;
    let facts = facts(&der).map_err(Unusable::Corrupt)?;
    if facts.public_key != key.public_key_raw() {
        return Err(Unusable::Corrupt(
            "its key is not the certificate's".to_string(),
        ));
    }
    if facts.not_after <= now {
        return Err(Unusable::Expired(facts.not_after));
    }
    Ok(Some(Authority {
        cert_path: files.cert,
        fingerprint: fingerprint(&der),
        der: CertificateDer::from(der),
        not_after: facts.not_after,
        key,
    }))
}

/// Makes a new authority in `dir`, replacing whatever is there; the caller holds `lock` (the
/// ledger's), so two commands never make two.
pub fn create(dir: &Path, now: DateTime<Utc>, lock: &crate::store::Lock) -> Result<Authority> {
    let files = Files::in_dir(dir);
    let failed = |why: String| Error::Usage(format!("cannot make a certificate authority: {why}"));
    let key = KeyPair::generate().map_err(|e| failed(e.to_string()))?;
    let params = ca_params(now);
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed(e.to_string()))?;
    let write = |path: &Path, text: &str, target: Target, mode: u32| {
        crate::store::write_atomic_mode(path, text, lock, target, Some(mode)).map_err(|source| {
            Error::Io {
                path: path.to_path_buf(),
                action: "cannot write",
                source,
            }
        })
    };
    write(&files.key, &key.serialize_pem(), Target::CaKey, 0o600)?;
    write(&files.cert, &cert.pem(), Target::CaCert, 0o644)?;
    let der = cert.der().to_vec();
    let facts = facts(&der).map_err(failed)?;
    Ok(Authority {
        cert_path: files.cert,
        fingerprint: fingerprint(&der),
        der: cert.der().clone(),
        not_after: facts.not_after,
        key,
    })
}

/// A name for the authority that says whose it is, and where it came from, in a browser's
/// certificate manager.
pub fn common_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "this user".to_string());
    format!("git-ports local CA ({user}, local names only)")
}

/// Sets `p`'s validity, to the day (rcgen's dates, without naming their crate).
fn valid(p: &mut CertificateParams, from: DateTime<Utc>, to: DateTime<Utc>) {
    let day = |t: DateTime<Utc>| rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8);
    p.not_before = day(from);
    p.not_after = day(to);
}

fn ca_params(now: DateTime<Utc>) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name());
    dn.push(DnType::OrganizationName, "git-ports");
    p.distinguished_name = dn;
    valid(
        &mut p,
        now - Duration::days(1),
        now + Duration::days(CA_DAYS),
    );
    // No intermediate below it: it signs servers' certificates only.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut permitted: Vec<GeneralSubtree> = PERMITTED_DNS
        .iter()
        .map(|d| GeneralSubtree::DnsName(d.to_string()))
        .collect();
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(
        [127, 0, 0, 0],
        8,
    )));
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(
        std::net::Ipv6Addr::LOCALHOST.octets(),
        128,
    )));
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    p
}

impl Authority {
    /// A certificate for `name` (one of the proxy's names, checked by the caller), with the
    /// authority's after it, and its key.
    pub fn issue(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let mut p = CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        let until = now + Duration::days(LEAF_DAYS).min(self.not_after - now);
        valid(&mut p, now - Duration::days(1), until);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let issuer = Issuer::from_ca_cert_der(&self.der, &self.key).map_err(|e| e.to_string())?;
        let cert = p.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone(), self.der.clone()], key))
    }
}

/// What is read back from a certificate.
struct Facts {
    not_after: DateTime<Utc>,
    public_key: Vec<u8>,
}

/// Reads `der` and checks it is an authority of ours: a CA whose name constraints, marked
/// critical, permit exactly the local names.
fn facts(der: &[u8]) -> std::result::Result<Facts, String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("its certificate does not read ({e})"))?;
    if !cert.is_ca() {
        return Err("its certificate is not a certificate authority's".to_string());
    }
    let constraints = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::NameConstraints(n) => Some((e.critical, n)),
            _ => None,
        });
    let Some((critical, nc)) = constraints else {
        return Err("its certificate has no name constraints (it could sign any name)".to_string());
    };
    let dns: Vec<String> = nc
        .permitted_subtrees
        .iter()
        .flatten()
        .filter_map(|s| match &s.base {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    if !critical || dns != PERMITTED_DNS || nc.excluded_subtrees.is_some() {
        return Err(
            "its name constraints are not git-ports' (local names only, critical)".to_string(),
        );
    }
    let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .unwrap_or_default();
    Ok(Facts {
        not_after,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// The DER of the first certificate in `pem`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|c| c.to_vec())
}

fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An authority made long ago is read back as expired, with the day it expired, and the
    /// error names the renewal; one made now is whole and issues for a name.
    #[test]
    fn an_expired_authority_says_so_and_a_fresh_one_issues() {
        let dir = tempfile::tempdir().expect("dir");
        let Ok(lock) = crate::store::lock(
            &dir.path().join("ledger.json"),
            5.0,
            std::time::Instant::now(),
        ) else {
            panic!("cannot lock");
        };
        let long_ago = Utc::now() - Duration::days(CA_DAYS + 10);
        create(dir.path(), long_ago, &lock).expect("create");
        match load(dir.path(), Utc::now()) {
            Err(Unusable::Expired(when)) => {
                assert!(when < Utc::now() && when > long_ago, "{when}");
                let e = Unusable::Expired(when).error(&Files::in_dir(dir.path()));
                assert!(e.to_string().contains("trust --renew"), "{e}");
            }
            other => panic!(
                "expected expired, got {:?}",
                other.map(|a| a.map(|a| a.fingerprint))
            ),
        }
        let now = Utc::now();
        let fresh = create(dir.path(), now, &lock).expect("create");
        let loaded = load(dir.path(), now).ok().flatten().expect("loaded");
        assert_eq!(loaded.fingerprint, fresh.fingerprint);
        let (chain, _) = loaded.issue("a.shop.localhost", now).expect("issue");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], loaded.der);
    }
}
