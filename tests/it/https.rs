//! HTTPS on the proxy's port: the local authority `git ports proxy trust` makes (local names
//! only), curl and openssl against it, names it must not give a certificate for, the key's
//! privacy, a crash at every point of making it, and the URL variables with `ports.https`.
//! (A real browser against it is in browser.rs.)
//!
//! Ports: this module takes 20600-20699.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use git_ports::fault::{self, Point, Target};

use crate::proxy::{Proc, node, proxy, upstream};
use crate::support::{Env, Run, skip};

/// Whether `program` runs here; a test that needs it is skipped, saying what to install.
fn needs(program: &str, install: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(&format!("needs {program} ({install})"));
    }
}

/// Skips the test unless curl, openssl, certutil and node run here.
fn tools() -> bool {
    needs("curl", "apt-get install curl");
    needs("openssl", "apt-get install openssl");
    // certutil has no --version: it says its usage and exits 1, which is enough.
    if Command::new("certutil")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        skip("needs certutil (apt-get install libnss3-tools)");
    }
    if !node() {
        skip("needs node for the worktrees' servers");
    }
    true
}

fn proxy_cmd(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["proxy"];
    all.extend(args);
    env.run(env.root(), all)
}

fn ca(env: &Env) -> PathBuf {
    env.path("ports-home/proxy-ca.pem")
}

fn key(env: &Env) -> PathBuf {
    env.path("ports-home/proxy-ca-key.pem")
}

/// curl with the authority: (exit code, body, `http_code http_version`).
fn curl(env: &Env, args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca(env))
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A repository `shop` with worktrees a and b, each holding web on its own server.
fn shop(env: &Env, base: u16) -> (PathBuf, PathBuf, Proc, Proc) {
    let repo = env.repo("shop");
    repo.range("web", base, base + 9);
    let a = repo.worktree("a", "a");
    let b = repo.worktree("b", "b");
    env.run(&a, ["allocate", "web"]).ok();
    env.run(&b, ["allocate", "web"]).ok();
    let sa = upstream(&a, base);
    let sb = upstream(&b, base + 1);
    (a, b, sa, sb)
}

fn curl_reaches_every_name_over_http1_and_http2_and_plain_http_still_works() {
    tools();
    let env = Env::new();
    let (_a, _b, _sa, _sb) = shop(&env, 20600);
    let run = proxy_cmd(&env, &["trust"]);
    run.ok();
    assert!(run.stdout.contains("local names only"), "{run:?}");
    let _proxy = proxy(&env, 20690);
    for (name, port) in [("a.shop.localhost", 20600), ("b.shop.localhost", 20601)] {
        let url = format!("https://{name}:20690/");
        for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
            let (code, said) = curl(&env, &[flag, "-w", " %{http_version}", &url]);
            assert_eq!(code, 0, "{url} {flag}: {said}");
            assert!(
                said.starts_with(&format!("hello from {port} host={name}:20690")),
                "{said}"
            );
            assert!(said.contains("xfp=https"), "{said}");
            assert!(said.ends_with(&format!(" {version}")), "{flag}: {said}");
        }
        // The same name in plain HTTP, on the same port.
        let (code, said) = curl(&env, &[&format!("http://{name}:20690/")]);
        assert_eq!(code, 0, "{said}");
        assert!(said.contains("xfp=http\n"), "{said}");
    }
    // The origin's name is one of the proxy's: a certificate, and the page that says why it
    // serves nothing yet.
    let (code, said) = curl(
        &env,
        &["-w", " %{http_code}", "https://shop.localhost:20690/"],
    );
    assert_eq!(code, 0, "{said}");
    assert!(said.ends_with(" 502"), "{said}");
    // curl with no authority refuses it: the certificate is the local one, not a public one.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "https://a.shop.localhost:20690/"])
        .output()
        .expect("curl");
    assert_eq!(out.status.code(), Some(60), "{out:?}");
    // status says where it is trusted.
    let status = proxy_cmd(&env, &["status", "--json"]).json();
    let https = &status["https"];
    assert_eq!(https["on"], true, "{status}");
    let nssdb = env.path("home/.pki/nssdb").display().to_string();
    assert!(
        https["trusted"].as_array().is_some_and(|t| t
            .iter()
            .any(|p| p["path"] == nssdb.as_str() && p["trusted"] == true)),
        "{status}"
    );
}

/// The authority's name constraints, as openssl reads them, and what they are for: a
/// certificate for another name made with its very key does not verify.
fn the_authority_can_sign_local_names_only_even_with_its_key() {
    tools();
    let env = Env::new();
    proxy_cmd(&env, &["trust"]).ok();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(ca(&env))
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
    assert!(
        text.contains("DNS:localhost") && text.contains("DNS:.localhost"),
        "{text}"
    );
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    // A leaf for each name, signed with the authority's key by openssl itself.
    let verify = |name: &str| -> String {
        let dir = env.path(&format!("leaf-{name}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let (k, csr, crt, ext) = (
            dir.join("k.pem"),
            dir.join("r.csr"),
            dir.join("c.pem"),
            dir.join("ext"),
        );
        std::fs::write(&ext, format!("subjectAltName=DNS:{name}\n")).expect("ext");
        let ok = |c: &mut Command| {
            let o = c.output().expect("openssl");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        ok(Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
            ])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(&k)
            .arg("-out")
            .arg(&csr));
        ok(Command::new("openssl")
            .args(["x509", "-req", "-days", "1", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(ca(&env))
            .arg("-CAkey")
            .arg(key(&env))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt));
        let o = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(ca(&env))
            .arg(&crt)
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let local = verify("feature-x.shop.localhost");
    assert!(local.contains(": OK"), "{local}");
    let bank = verify("bank.example");
    assert!(!bank.contains(": OK"), "{bank}");
    assert!(bank.contains("subtree violation"), "{bank}");
}

/// A TLS handshake with `name` as SNI (or none) to 127.0.0.1:`port`, trusting the authority:
/// the certificate's names, or why the handshake failed.
fn handshake(env: &Env, port: u16, name: &str) -> Result<Vec<String>, String> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca(env)).expect("ca") {
        roots.add(c.expect("cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = !name.is_empty();
    let server = if name.is_empty() {
        ServerName::try_from("127.0.0.1").expect("ip")
    } else {
        ServerName::try_from(name.to_string()).expect("name")
    };
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let certs = conn.peer_certificates().unwrap_or_default();
    let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).map_err(|e| e.to_string())?;
    Ok(leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect()
        })
        .unwrap_or_default())
}

/// No certificate for a name the proxy does not serve, for none, or for one outside
/// `localhost`; a served name gets exactly its own; thousands of names keep nothing.
fn the_proxy_gives_a_certificate_only_for_its_own_names() {
    tools();
    let env = Env::new();
    let (_a, _b, _sa, _sb) = shop(&env, 20610);
    proxy_cmd(&env, &["trust"]).ok();
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyTimeout", "2"],
    );
    let p = proxy(&env, 20691);
    assert_eq!(
        handshake(&env, 20691, "a.shop.localhost"),
        Ok(vec!["DNSName(a.shop.localhost)".to_string()])
    );
    for name in [
        "bank.example",
        "nobody.shop.localhost",
        "localhost.example",
        "",
    ] {
        let got = handshake(&env, 20691, name);
        // Refused with an alert that says so, not cut off.
        assert!(
            got.as_ref().is_err_and(|e| e.contains("AccessDenied")),
            "{name:?}: {got:?}"
        );
    }
    // openssl's client, asking for bank.example: no certificate at all.
    let mut s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            "127.0.0.1:20691",
            "-servername",
            "bank.example",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    drop(s_client.stdin.take());
    let said = s_client.wait_with_output().expect("openssl");
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("no peer certificate available"), "{said}");
    // A handshake that never finishes is dropped as a slow request head is (the bound is
    // ports.proxyTimeout here, 2 s).
    let t = Instant::now();
    let mut slow = TcpStream::connect(("127.0.0.1", 20691)).expect("connect");
    slow.write_all(&[0x16, 0x03, 0x01]).expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut slow, &mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Three thousand distinct names the proxy does not serve: refused, and not kept.
    let before = crate::limits::rss_kib(p.0.id());
    for i in 0..3000 {
        let name = format!("n{i}-{}.shop.localhost", "x".repeat(40));
        assert!(handshake(&env, 20691, &name).is_err());
    }
    let after = crate::limits::rss_kib(p.0.id());
    assert!(after < before + 4 * 1024, "{before} KiB → {after} KiB");
    // The served names are still served.
    assert!(handshake(&env, 20691, "b.shop.localhost").is_ok());
}

/// A key others can read, or another user's, is refused with the fix, and nothing changes;
/// a damaged authority says so and `--renew` replaces it.
fn a_key_others_can_read_or_a_damaged_authority_is_refused_with_the_fix() {
    tools();
    let env = Env::new();
    proxy_cmd(&env, &["trust"]).ok();
    let pem = std::fs::read(ca(&env)).expect("ca");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(key(&env), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let run = proxy_cmd(&env, &["trust"]);
        assert_eq!(run.code, 5, "{run:?}");
        assert!(run.stderr.contains("can be read by other users"), "{run:?}");
        assert!(run.stderr.contains("chmod 600"), "{run:?}");
        // --renew does not replace a key because of its mode either: the fix is the user's.
        let run = proxy_cmd(&env, &["trust", "--renew"]);
        assert_eq!(run.code, 5, "{run:?}");
        assert_eq!(std::fs::read(ca(&env)).expect("ca"), pem);
        let status = proxy_cmd(&env, &["status", "--json"]).json();
        assert_eq!(status["https"]["on"], false, "{status}");
        assert!(
            status["https"]["problem"]
                .as_str()
                .is_some_and(|p| p.contains("can be read by other users")),
            "{status}"
        );
        std::fs::set_permissions(key(&env), std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if crate::hostile::root() {
            // Another user's key (nobody's, as root can make it).
            let nobody = 65534;
            std::os::unix::fs::chown(key(&env), Some(nobody), None).expect("chown");
            let run = proxy_cmd(&env, &["trust"]);
            assert_eq!(run.code, 5, "{run:?}");
            assert!(run.stderr.contains("not to this user"), "{run:?}");
            std::os::unix::fs::chown(key(&env), Some(0), None).expect("chown");
        }
    }
    // A damaged certificate.
    std::fs::write(
        ca(&env),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let run = proxy_cmd(&env, &["trust"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("cannot be used"), "{run:?}");
    assert!(run.stderr.contains("--renew"), "{run:?}");
    let run = proxy_cmd(&env, &["trust", "--renew"]);
    run.ok();
    assert_ne!(std::fs::read(ca(&env)).expect("ca"), pem);
    assert_eq!(
        proxy_cmd(&env, &["status", "--json"]).json()["https"]["on"],
        true
    );
}

/// `untrust` takes the authority out of the NSS database; `--delete` deletes it, and HTTPS is
/// off (plain HTTP keeps working).
fn untrust_removes_the_authority_and_delete_deletes_it() {
    tools();
    let env = Env::new();
    let (_a, _b, _sa, _sb) = shop(&env, 20620);
    proxy_cmd(&env, &["trust"]).ok();
    let db = format!("sql:{}", env.path("home/.pki/nssdb").display());
    let listed = || {
        let o = Command::new("certutil")
            .args(["-L", "-d", &db])
            .output()
            .expect("certutil");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(listed().contains("git-ports local CA"), "{}", listed());
    let _proxy = proxy(&env, 20692);
    assert_eq!(curl(&env, &["https://a.shop.localhost:20692/"]).0, 0);
    let run = proxy_cmd(&env, &["untrust"]);
    run.ok();
    assert!(!listed().contains("git-ports local CA"), "{}", listed());
    assert!(ca(&env).exists());
    let run = proxy_cmd(&env, &["untrust", "--delete"]);
    run.ok();
    assert!(!ca(&env).exists() && !key(&env).exists());
    // The running proxy sees it within a second: no certificate any more.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, _) = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--max-time",
            "5",
            "https://a.shop.localhost:20692/",
        ])
        .output()
        .map(|o| (o.status.code().unwrap_or(-1), ()))
        .expect("curl");
    assert_ne!(code, 0);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "http://a.shop.localhost:20692/"])
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello from 20620"));
    let status = proxy_cmd(&env, &["status", "--json"]).json();
    assert_eq!(status["https"]["on"], false, "{status}");
}

/// A crash, or a failed write, at every point of making the authority: what is left is
/// either no authority or a whole one, its key never readable by others, and the next
/// `trust` succeeds.
fn a_crash_at_every_point_of_making_the_authority_leaves_none_or_a_whole_one() {
    tools();
    let env = Env::new();
    let points = fault::points_of(&[Target::CaKey, Target::CaCert]);
    for point in &points {
        for fail in [false, true] {
            let name = Point::name(*point);
            let fault = if fail {
                format!("{name}:fail")
            } else {
                name.clone()
            };
            let _ = std::fs::remove_file(ca(&env));
            let _ = std::fs::remove_file(key(&env));
            let trace = env.path("trace");
            let _ = std::fs::remove_file(&trace);
            let out = env
                .cmd(env.root())
                .args(["proxy", "trust"])
                .env(fault::ENV, &fault)
                .env(fault::TRACE, &trace)
                .output()
                .expect("trust");
            let reached = std::fs::read_to_string(&trace).unwrap_or_default();
            assert!(
                reached.lines().any(|l| l == name),
                "{fault}: reached {reached}"
            );
            let renamed = name.ends_with(".renamed");
            if !renamed {
                assert!(!out.status.success(), "{fault}");
            }
            #[cfg(unix)]
            if key(&env).exists() {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(key(&env))
                    .expect("key")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{fault}");
            }
            // No half-written file under either name, and a certificate only with its key.
            for f in [ca(&env), key(&env)] {
                if f.exists() {
                    let text = std::fs::read_to_string(&f).expect("read");
                    assert!(text.trim_end().ends_with("-----"), "{fault}: {text}");
                }
            }
            if ca(&env).exists() {
                assert!(key(&env).exists(), "{fault}");
            }
            let status = proxy_cmd(&env, &["status", "--json"]).json();
            assert!(status["https"]["problem"].is_null(), "{fault}: {status}");
            assert_eq!(
                status["https"]["on"],
                ca(&env).exists(),
                "{fault}: {status}"
            );
            proxy_cmd(&env, &["trust"]).ok();
            assert_eq!(
                proxy_cmd(&env, &["status", "--json"]).json()["https"]["on"],
                true
            );
        }
    }
}

/// `ports.https`: the URL a browser opens goes through the proxy's HTTPS, `{public_url}` too,
/// `WEB_URL` stays the server's own address, and Node given `NODE_EXTRA_CA_CERTS` trusts the
/// proxy's certificate for another worktree's name.
fn with_ports_https_the_browser_urls_say_https_and_node_trusts_them() {
    tools();
    let env = Env::new();
    let (a, b, _sa, _sb) = shop(&env, 20630);
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "20693"],
    );
    env.git(env.root(), ["config", "--global", "ports.https", "true"]);
    env.git(
        &a,
        [
            "config",
            "ports.derived",
            "CALLBACK={public_url}/auth/callback",
        ],
    );
    // No authority yet: said, and no NODE_EXTRA_CA_CERTS naming a file that is not there.
    let run = env.run(&a, ["env", "--format", "json"]);
    assert!(run.stderr.contains("git ports proxy trust"), "{run:?}");
    assert!(run.json()["NODE_EXTRA_CA_CERTS"].is_null(), "{run:?}");
    proxy_cmd(&env, &["trust"]).ok();
    let vars = env.run(&a, ["env", "--format", "json"]).json();
    assert_eq!(
        vars["WEB_PUBLIC_URL"], "https://a.shop.localhost:20693",
        "{vars}"
    );
    assert_eq!(vars["WEB_URL"], "http://localhost:20630", "{vars}");
    assert_eq!(
        vars["CALLBACK"], "https://a.shop.localhost:20693/auth/callback",
        "{vars}"
    );
    let node_ca = vars["NODE_EXTRA_CA_CERTS"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(Path::new(&node_ca), ca(&env));
    let vb = env.run(&b, ["env", "--format", "json"]).json();
    let b_url = vb["WEB_PUBLIC_URL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(b_url, "https://b.shop.localhost:20693");
    let _proxy = proxy(&env, 20693);
    // Node resolves no *.localhost name on every machine: it connects to loopback and asks
    // for b's name, as a resolver that maps it would.
    let script = "const https = require('https');\nconst u = new URL(process.argv[1]);\nhttps.get({ host: '127.0.0.1', port: u.port, servername: u.hostname, headers: { host: u.host } }, (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => console.log(b.trim())); }).on('error', (e) => { console.log('error ' + e.code); });\n";
    let run = |with_ca: bool| {
        let mut cmd = Command::new("node");
        cmd.args(["-e", script, &b_url]).current_dir(&a);
        if with_ca {
            cmd.env("NODE_EXTRA_CA_CERTS", &node_ca);
        } else {
            cmd.env_remove("NODE_EXTRA_CA_CERTS");
        }
        String::from_utf8_lossy(&cmd.output().expect("node").stdout)
            .trim()
            .to_string()
    };
    let without = run(false);
    assert!(without.starts_with("error"), "{without}");
    let with = run(true);
    assert!(
        with.starts_with("hello from 20631 host=b.shop.localhost:20693"),
        "{with}"
    );
    assert!(with.contains("xfp=https"), "{with}");
}

/// Without certutil, `trust` says how to install it in one line and keeps the authority it
/// made, so the next `trust` (or the user, by hand) can use it.
fn without_certutil_trust_says_how_to_install_it_and_keeps_the_authority() {
    tools();
    let env = Env::new();
    // A PATH without certutil (git-ports itself needs nothing on PATH for this).
    let empty = env.path("empty-bin");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = env
        .cmd(env.root())
        .args(["proxy", "trust"])
        .env("PATH", &empty)
        .output()
        .expect("trust");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("apt-get install libnss3-tools"), "{stderr}");
    assert!(stderr.contains("git ports proxy trust"), "{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("git-ports:"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(ca(&env).exists() && key(&env).exists());
    // With certutil back, the same authority is trusted.
    let before = std::fs::read(ca(&env)).expect("ca");
    proxy_cmd(&env, &["trust"]).ok();
    assert_eq!(std::fs::read(ca(&env)).expect("ca"), before);
}

include!(concat!(env!("OUT_DIR"), "/it_https.rs"));
