//! A real browser: headless Chromium (Debian's package), driven by playwright-core, against
//! two worktrees' real servers: cookies stay with the worktree whose name set them, without
//! the proxy and through it, and Vite's hot reload reaches the page through the proxy.
//!
//! `GIT_PORTS_TEST_WEB_TOOLS` names a directory whose `node_modules` holds playwright-core
//! and vite (`.ci/run` installs them, and Chromium: `apt-get install chromium`).
//!
//! Ports: this module takes 29700-29799.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::proxy::{Proc, node, proxy, upstream};
use crate::support::{Env, skip, wait_listening};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where playwright-core and vite are, when this machine has them and Chromium.
fn tools() -> PathBuf {
    let dir = std::env::var_os("GIT_PORTS_TEST_WEB_TOOLS").map(PathBuf::from);
    match dir {
        Some(d)
            if d.join("node_modules/playwright-core").is_dir()
                && d.join("node_modules/vite").is_dir()
                && Path::new(CHROMIUM).exists()
                && node() =>
        {
            d
        }
        _ => skip(
            "needs node, Chromium (apt-get install chromium) and GIT_PORTS_TEST_WEB_TOOLS naming a directory with `npm i playwright-core vite` done in it",
        ),
    }
}

/// Runs a playwright-core script with node; its last line of output, as JSON.
fn drive(env: &Env, tools: &Path, script: &str) -> serde_json::Value {
    let file = env.path("drive.js");
    let head = format!(
        "const {{ chromium }} = require({:?});\nconst launch = () => chromium.launch({{ executablePath: {CHROMIUM:?}, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] }});\n",
        tools
            .join("node_modules/playwright-core")
            .display()
            .to_string()
    );
    std::fs::write(&file, format!("{head}{script}")).expect("script");
    let out = Command::new("node")
        .arg(&file)
        .env("HOME", env.path("home"))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "the browser script said no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A page whose script says 'version 1', served by Vite in worktree `dir` (on its WEB_PORT,
/// through `git ports exec`); its `main.js`, which a test rewrites to see hot reload.
fn vite_app(env: &Env, tools: &Path, dir: &Path) -> (PathBuf, Proc) {
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><html><body><p id=\"app\">loading</p><script type=\"module\" src=\"/main.js\"></script></body></html>\n",
    )
    .expect("index");
    let main = dir.join("main.js");
    std::fs::write(
        &main,
        "document.querySelector('#app').textContent = 'version 1';\nif (import.meta.hot) import.meta.hot.accept();\n",
    )
    .expect("main");
    std::fs::write(
        dir.join("vite.config.mjs"),
        "export default { server: { port: Number(process.env.WEB_PORT), strictPort: true, host: '127.0.0.1' } };\n",
    )
    .expect("config");
    let vite = tools.join("node_modules/vite/bin/vite.js");
    let mut cmd = env.cmd(dir);
    cmd.args(["exec", "--", "node"])
        .arg(&vite)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (main, Proc(cmd.spawn().expect("vite")))
}

/// A JavaScript function of a page showing [`vite_app`]'s version 1: it marks the page, makes
/// `main` version 2, and resolves to `{ text, kept }`, what the page then shows and whether it
/// is the same page (a hot reload keeps the mark, a page load loses it).
fn hot_reload(main: &Path) -> String {
    format!(
        r##"async (page) => {{
    const shows = (v) => page.waitForFunction((v) => document.querySelector("#app").textContent === v, v, {{ timeout: 20 * 1000 }});
    await shows("version 1");
    await page.evaluate(() => {{ window.kept = "same page"; }});
    require("fs").writeFileSync({main:?}, "document.querySelector('#app').textContent = 'version 2';\nif (import.meta.hot) import.meta.hot.accept();\n");
    await shows("version 2");
    return {{ text: await page.textContent("#app"), kept: await page.evaluate(() => window.kept) }};
  }}"##,
        main = main.display().to_string()
    )
}

fn a_cookie_stays_with_the_worktree_whose_name_set_it() {
    let tools = tools();
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29700, 29709);
    let a = repo.worktree("a", "a");
    let b = repo.worktree("b", "b");
    env.run(&a, ["allocate", "web"]).ok();
    env.run(&b, ["allocate", "web"]).ok();
    let (pa, pb) = (29700, 29701);
    let _sa = upstream(&a, pa);
    let _sb = upstream(&b, pb);
    let _proxy = proxy(&env, 29790);
    // The URLs the browser opens by name are the worktrees' own WEB_PUBLIC_URL.
    let public = |dir: &std::path::Path| {
        env.run(dir, ["env", "--format", "json"]).ok().json()["WEB_PUBLIC_URL"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (ua, ub) = (public(&a), public(&b));
    assert_eq!(
        (ua.as_str(), ub.as_str()),
        (
            "http://a.shop.localhost:29700",
            "http://b.shop.localhost:29701"
        )
    );
    let script = format!(
        r##"
(async () => {{
  const browser = await launch();
  const page = await browser.newPage();
  const text = async (url) => (await (await page.goto(url)).text()).trim();
  const out = {{}};
  // By port on localhost: one cookie jar for every worktree (the problem).
  await text("http://localhost:{pa}/set");
  out.localhost_b = await text("http://localhost:{pb}/echo");
  await page.context().clearCookies();
  // By name, no proxy: each worktree's own.
  out.name_set_a = await text("{ua}/set");
  out.name_a = await text("{ua}/echo");
  out.name_b = await text("{ub}/echo");
  await page.context().clearCookies();
  // By name, through the proxy.
  out.proxy_set_b = await text("http://b.shop.localhost:29790/set");
  out.proxy_b = await text("http://b.shop.localhost:29790/echo");
  out.proxy_a = await text("http://a.shop.localhost:29790/echo");
  console.log(JSON.stringify(out));
  await browser.close();
}})().catch((e) => {{ console.log(JSON.stringify({{ error: String(e) }})); process.exit(1); }});
"##
    );
    let out = drive(&env, &tools, &script);
    assert_eq!(out["localhost_b"], format!("cookie=who={pa}"), "{out}");
    assert_eq!(out["name_set_a"], format!("set {pa}"), "{out}");
    assert_eq!(out["name_a"], format!("cookie=who={pa}"), "{out}");
    assert_eq!(out["name_b"], "cookie=", "{out}");
    assert_eq!(out["proxy_set_b"], format!("set {pb}"), "{out}");
    assert_eq!(out["proxy_b"], format!("cookie=who={pb}"), "{out}");
    assert_eq!(out["proxy_a"], "cookie=", "{out}");
}

fn vites_hot_reload_reaches_the_page_through_the_proxy() {
    let tools = tools();
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29710, 29719);
    let a = repo.worktree("a", "a");
    env.run(&a, ["allocate", "web"]).ok();
    let (main, _vite) = vite_app(&env, &tools, &a);
    wait_listening(29710, true);
    let _proxy = proxy(&env, 29791);
    let script = format!(
        r##"
(async () => {{
  const browser = await launch();
  const page = await browser.newPage();
  await page.goto("http://a.shop.localhost:29791/");
  console.log(JSON.stringify(await ({hot})(page)));
  await browser.close();
}})().catch((e) => {{ console.log(JSON.stringify({{ error: String(e) }})); process.exit(1); }});
"##,
        hot = hot_reload(&main)
    );
    let out = drive(&env, &tools, &script);
    assert_eq!(out["text"], "version 2", "{out}");
    // Hot reload, not a page load: the page kept what it had.
    assert_eq!(out["kept"], "same page", "{out}");
}

/// HTTPS through the proxy with the authority `git ports proxy trust` put in this HOME's NSS
/// database (a fresh one): two worktrees' https:// names load with no certificate error over
/// HTTP/2; a `Secure; SameSite=None` cookie one sets is not sent to the other; Vite's hot
/// reload works over wss://; after `untrust`, the same page is a certificate error.
fn https_names_are_trusted_kept_apart_and_hot_reload_works_until_untrust() {
    let tools = tools();
    if std::process::Command::new("certutil")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        skip("needs certutil (apt-get install libnss3-tools)");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29720, 29729);
    let a = repo.worktree("a", "a");
    let b = repo.worktree("b", "b");
    env.run(&a, ["allocate", "web"]).ok();
    env.run(&b, ["allocate", "web"]).ok();
    assert!(!env.path("home/.pki/nssdb").exists());
    env.run(env.root(), ["proxy", "trust"]).ok();
    // Vite in a, the plain server in b.
    let (main, _vite) = vite_app(&env, &tools, &a);
    wait_listening(29720, true);
    let _sb = upstream(&b, 29721);
    let _proxy = proxy(&env, 29792);
    env.git(env.root(), ["config", "--global", "ports.https", "true"]);
    let public = |dir: &std::path::Path| {
        env.run(dir, ["env", "--format", "json"]).ok().json()["WEB_PUBLIC_URL"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (ua, ub) = (public(&a), public(&b));
    assert_eq!(ua, "https://a.shop.localhost:29792");
    assert_eq!(ub, "https://b.shop.localhost:29792");
    let script = format!(
        r##"
(async () => {{
  const browser = await launch();
  const context = await browser.newContext();
  const page = await context.newPage();
  const out = {{}};
  const text = async (url) => (await (await page.goto(url)).text()).trim();
  out.set_b = await text("{ub}/set-secure");
  out.protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  out.echo_b = await text("{ub}/echo");
  out.cookies = (await context.cookies()).map((c) => `${{c.domain}} ${{c.name}}=${{c.value}} secure=${{c.secure}} ${{c.sameSite}}`);
  await page.goto("{ua}/");
  // What the browser would send to a's name: none of b's cookies.
  out.for_a = (await context.cookies("{ua}/")).length;
  Object.assign(out, await ({hot})(page));
  out.a_protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  console.log(JSON.stringify(out));
  await browser.close();
}})().catch((e) => {{ console.log(JSON.stringify({{ error: String(e) }})); process.exit(1); }});
"##,
        hot = hot_reload(&main)
    );
    let out = drive(&env, &tools, &script);
    assert_eq!(out["set_b"], "set 29721", "{out}");
    assert_eq!(out["protocol"], "h2", "{out}");
    assert_eq!(out["a_protocol"], "h2", "{out}");
    assert_eq!(out["echo_b"], "cookie=who=29721", "{out}");
    assert_eq!(
        out["cookies"],
        serde_json::json!(["b.shop.localhost who=29721 secure=true None"]),
        "{out}"
    );
    assert_eq!(out["for_a"], 0, "{out}");
    // Hot reload over wss://, not a page load: the page kept what it had.
    assert_eq!(out["text"], "version 2", "{out}");
    assert_eq!(out["kept"], "same page", "{out}");
    env.run(env.root(), ["proxy", "untrust"]).ok();
    let script = format!(
        r##"
(async () => {{
  const browser = await launch();
  const page = await browser.newPage();
  let error = "";
  try {{ await page.goto("{ub}/echo"); }} catch (e) {{ error = String(e); }}
  console.log(JSON.stringify({{ error }}));
  await browser.close();
}})().catch((e) => {{ console.log(JSON.stringify({{ error: "script: " + String(e) }})); process.exit(1); }});
"##
    );
    let out = drive(&env, &tools, &script);
    let error = out["error"].as_str().unwrap_or_default();
    assert!(error.contains("ERR_CERT_AUTHORITY_INVALID"), "{out}");
}

include!(concat!(env!("OUT_DIR"), "/it_browser.rs"));
