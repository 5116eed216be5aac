//! Ports: who listens on thousands of them (git-ports' reading against the `listeners`
//! crate), health checks of ports nothing answers on and of ports a container publishes, and
//! this build against another on the same fixtures.

use super::*;

/// Who listens on `n` ports, each held by this process: git-ports' own reading of the system
/// (`/proc` on Linux) against the `listeners` crate, which is what other systems use, on the
/// same sockets in the same run.
pub(super) fn owner_lookup(n: usize) {
    let base: u16 = 45000;
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i as u16)).ok())
        .collect();
    let ports: Vec<u16> = held
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect();
    let ours = || {
        let start = Instant::now();
        let found = git_ports::machine::listeners(&ports);
        let named = found
            .values()
            .filter(|ls| ls.iter().any(|l| l.process.is_some()))
            .count();
        (start.elapsed(), named)
    };
    let theirs = || {
        let start = Instant::now();
        let all = listeners::get_all().unwrap_or_default();
        let named = ports
            .iter()
            .filter(|p| all.iter().any(|l| l.socket.port() == **p))
            .count();
        (start.elapsed(), named)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut named_a, mut named_b) = (0, 0);
    for _ in 0..RUNS {
        let (t, k) = ours();
        a.push(t);
        named_a = k;
        let (t, k) = theirs();
        b.push(t);
        named_b = k;
    }
    let (a, b) = (median(a), median(b));
    println!(
        "\nowner lookup, {} listening ports: git-ports {} (named {named_a}), listeners crate {} (named {named_b}): {:.2}× the crate's time",
        ports.len(),
        ms(a),
        ms(b),
        a.as_secs_f64() / b.as_secs_f64()
    );
}

/// A repository whose main worktree holds `n` ports (services `s0`…), for health checks.
fn many_ports_fixture(n: usize, base: u16) -> PathBuf {
    let root = target_dir().join(format!("ports{n}"));
    let repo = root.join("main");
    if !root.join("ready").exists() {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("home")).expect("mkdir");
        fs::create_dir_all(root.join("ports-home")).expect("mkdir");
        fs::write(root.join("home/.gitconfig"), "").expect("gitconfig");
        fs::create_dir_all(&repo).expect("mkdir");
        git(&root, &repo, &["init", "-q", "-b", "main"]);
        let ports: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "\"s{i}\": {{\"port\": {}, \"allocated_at\": \"2026-01-01T00:00:00Z\"}}",
                    base as usize + i
                )
            })
            .collect();
        let p = repo.to_str().expect("utf-8");
        let registry = format!(
            "{{\"version\": 1, \"worktrees\": {{\"/\": {{\"path\": \"{p}\", \"ports\": {{{}}}}}}}}}\n",
            ports.join(", ")
        );
        fs::write(repo.join(".git/worktree-ports.json"), registry).expect("registry");
        fs::write(root.join("ready"), "").expect("ready");
    }
    root
}

pub(super) fn silent_ports(n: usize) {
    use socket2::{Domain, Socket, Type};
    let base: u16 = 40000;
    let root = many_ports_fixture(n, base);
    let repo = root.join("main");
    let mut held = Vec::new();
    for i in 0..n {
        let port = base + i as u16;
        let Ok(s) = Socket::new(Domain::IPV6, Type::STREAM, None) else {
            continue;
        };
        let addr: std::net::SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
        if s.set_only_v6(false).is_err() || s.bind(&addr.into()).is_err() || s.listen(0).is_err() {
            continue;
        }
        let filler =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200));
        held.push((s, filler));
    }
    let timeout = 1.0;
    let t = median(
        (0..3)
            .map(|_| {
                time(
                    &root,
                    &repo,
                    BIN,
                    &["status", "--health-check", "--timeout", "1"],
                )
            })
            .collect(),
    );
    println!(
        "health check, {n} ports ({} silent on IPv4 and IPv6) at --timeout 1: {} = {:.2}× the timeout",
        held.len(),
        ms(t),
        t.as_secs_f64() / timeout
    );
}

/// This build against `old` (another build's binary), interleaved on the same fixtures:
/// `status` at 1,000 worktrees, and `status --health-check` over 5,000 ports this process
/// listens on, where the owner lookup is most of the work.
pub(super) fn against(old: &str) {
    let pair = |title: &str, root: &Path, dir: &Path, args: &[&str], runs: usize| {
        let (mut new_t, mut old_t) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            new_t.push(time(root, dir, BIN, args));
            old_t.push(time(root, dir, old, args));
        }
        let (n, o) = (median(new_t), median(old_t));
        println!(
            "{title}: this build {}, the other {}: {:.2}× the other's time",
            ms(n),
            ms(o),
            n.as_secs_f64() / o.as_secs_f64()
        );
    };
    let root = fixture(1000);
    let repo = root.join("main");
    pair("status, 1000 worktrees", &root, &repo, &["status"], RUNS);
    pair(
        "status --json, 1000 worktrees",
        &root,
        &repo,
        &["status", "--json"],
        RUNS,
    );
    let n = 5000;
    let base: u16 = 40000;
    let root = many_ports_fixture(n, base);
    let repo = root.join("main");
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i as u16)).ok())
        .collect();
    pair(
        &format!("health check naming {} listeners", held.len()),
        &root,
        &repo,
        &["status", "--health-check", "--timeout", "1"],
        7,
    );
}

/// `status --health-check` over `n` ports: served by plain listeners of this process (Docker
/// never asked), then published by one container of a compose project in the repository
/// (root's docker-proxy holds each, so git-ports asks the engine), each beside git's own
/// `git worktree list --porcelain` timed in the same stretch.
pub(super) fn docker_health_check(n: usize) {
    let base: u16 = 46000;
    let root = many_ports_fixture(n, base);
    let repo = root.join("main");
    let args = ["status", "--health-check", "--timeout", "1"];
    let measure = |host: Option<&str>| {
        let (mut g, mut t) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            g.push(time(
                &root,
                &repo,
                "git",
                &["worktree", "list", "--porcelain"],
            ));
            let start = Instant::now();
            let mut cmd = Command::new(BIN);
            env(&mut cmd, &root).current_dir(&repo).args(args);
            match host {
                Some(h) => cmd.env("DOCKER_HOST", h),
                None => cmd.env_remove("DOCKER_HOST"),
            };
            let out = cmd.output().expect("git-ports");
            t.push(start.elapsed());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (median(g), median(t))
    };
    // The connects alone, in this process: what the servers holding the ports cost to reach.
    let ports: Vec<u16> = (0..n).map(|i| base + i as u16).collect();
    let probe = || {
        let mut t = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            git_ports::net::check_all(&ports, Duration::from_secs(1));
            t.push(start.elapsed());
        }
        median(t)
    };
    let plain: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|i| std::net::TcpListener::bind(("0.0.0.0", base + i as u16)).ok())
        .collect();
    let (g1, without) = measure(None);
    let probe_plain = probe();
    drop(plain);

    let Some(dockerd) = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("\ndocker health check: SKIPPED, no dockerd here (apt-get install docker.io)");
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("gpb")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let mut daemon = Command::new(dockerd)
        .args(["--host", &host])
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("docker.pid"))
        .args(["--iptables=false", "--ip-forward=false", "--bridge=none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dockerd");
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &host)
            .output()
            .expect("docker")
    };
    let start = Instant::now();
    while !docker(&["info"]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dockerd did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let img = dir.path().join("img");
    fs::create_dir_all(&img).expect("mkdir");
    fs::copy("/bin/busybox", img.join("busybox")).expect("busybox (busybox-static)");
    fs::write(
        img.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\",\"sleep\",\"3600\"]\n",
    )
    .expect("Dockerfile");
    assert!(
        docker(&[
            "build",
            "-q",
            "-t",
            "gpb:local",
            img.to_str().expect("utf-8")
        ])
        .status
        .success()
    );
    assert!(docker(&["network", "create", "gpb"]).status.success());
    let range = format!(
        "{base}-{}:{base}-{}",
        base as usize + n - 1,
        base as usize + n - 1
    );
    let label_dir = format!("com.docker.compose.project.working_dir={}", repo.display());
    let run = docker(&[
        "run",
        "-d",
        "--name",
        "gpb-c",
        "--init",
        "--network",
        "gpb",
        "-p",
        &range,
        "--label",
        "com.docker.compose.project=bench",
        "--label",
        "com.docker.compose.service=db",
        "--label",
        &label_dir,
        "gpb:local",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (g2, with) = measure(Some(&host));
    let probe_docker = probe();
    let (g3, unasked) = measure(Some("unix:///nonexistent/docker.sock"));
    // A daemon that stops leaves its networks' bridges on the host: remove them first.
    docker(&["rm", "-f", "gpb-c"]);
    docker(&["network", "rm", "gpb"]);
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    println!("\nhealth check, {n} ports, medians of {RUNS} runs");
    println!(
        "  {:<58} {:>10}  {:>5.2}× git",
        "served by plain listeners (Docker not asked)",
        ms(without),
        without.as_secs_f64() / g1.as_secs_f64()
    );
    println!(
        "  {:<58} {:>10}  {:>5.2}× git",
        "published by a container (root's docker-proxy; Docker asked)",
        ms(with),
        with.as_secs_f64() / g2.as_secs_f64()
    );
    println!(
        "  {:<58} {:>10}  {:>5.2}× git",
        "the same, Docker not reachable (its forwarders named)",
        ms(unasked),
        unasked.as_secs_f64() / g3.as_secs_f64()
    );
    println!(
        "  the connects alone: {} to plain listeners, {} to docker-proxy; the rest of the health check: {} without Docker, {} with",
        ms(probe_plain),
        ms(probe_docker),
        ms(without.saturating_sub(probe_plain)),
        ms(with.saturating_sub(probe_docker))
    );
    println!(
        "  with Docker: {:.2}× the time without",
        with.as_secs_f64() / without.as_secs_f64()
    );
}
