//! The harness the integration tests run under (libtest2-harness, which takes libtest's
//! arguments: filters, `--exact`, `--test-threads`, `--list`). A test is a `fn NAME()` that
//! passes by returning (see build.rs for how they are found). One that cannot run here says
//! so with `support::skip`, or `support::skip_part` for a part of it: it is counted as
//! ignored, never as passed, and the summary lists every test that did not run, and why.

// Clippy 1.96 for Windows asks `RUNNING` for the `const` initializer it already has.
#![allow(clippy::missing_const_for_thread_local)]

use std::cell::RefCell;
use std::sync::Mutex;

use libtest2_harness::{Case, RunError, Source, TestContext, TestKind};

/// One test: its name (`module::function`) and its body.
pub struct Test {
    name: &'static str,
    body: fn(),
}

impl Test {
    pub fn new(name: &'static str, body: fn()) -> Test {
        Test { name, body }
    }
}

/// What a test that cannot run here unwinds with: why.
struct Skipped(String);

thread_local! {
    /// The test running on this thread, and the parts of it that could not run.
    static RUNNING: RefCell<(String, Vec<String>)> = const { RefCell::new((String::new(), Vec::new())) };
}

/// Every test that did not run (wholly), and why.
static NOT_RUN: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn running() -> String {
    RUNNING.with(|r| r.borrow().0.clone())
}

/// The running test cannot run here, and why: it ends now, counted as not run. In CI
/// (`CI` set), where `.ci/run` installs every tool the tests need, it fails instead.
#[track_caller]
pub fn skip(why: &str) -> ! {
    if in_ci() {
        panic!("{} cannot run in CI: {why}", running());
    }
    eprintln!("SKIPPED {}: {why}", running());
    std::panic::panic_any(Skipped(why.to_string()))
}

/// A part of the running test cannot run here: the rest goes on, and the test, even if all
/// the rest passes, is counted as not run, with `part` and why. In CI it fails.
#[track_caller]
pub fn skip_part(part: &str, why: &str) {
    if in_ci() {
        panic!("{} ({part}) cannot run in CI: {why}", running());
    }
    eprintln!("SKIPPED {} ({part}): {why}", running());
    RUNNING.with(|r| r.borrow_mut().1.push(format!("{part}: {why}")));
}

impl Case for Test {
    fn name(&self) -> &str {
        self.name
    }

    fn kind(&self) -> TestKind {
        TestKind::IntegrationTest
    }

    fn source(&self) -> Option<&Source> {
        None
    }

    fn exclusive(&self, _: &TestContext) -> bool {
        false
    }

    fn run(&self, context: &TestContext) -> Result<(), RunError> {
        RUNNING.with(|r| *r.borrow_mut() = (self.name.to_string(), Vec::new()));
        let outcome = std::panic::catch_unwind(self.body);
        let parts = RUNNING.with(|r| std::mem::take(&mut r.borrow_mut().1));
        let why = match outcome {
            Ok(()) if parts.is_empty() => return Ok(()),
            Ok(()) => format!("ran in part only; {}", parts.join("; ")),
            Err(payload) => match payload.downcast::<Skipped>() {
                Ok(s) => s.0,
                Err(other) => std::panic::resume_unwind(other),
            },
        };
        NOT_RUN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.name.to_string(), why.clone()));
        context.ignore_for(&why)?;
        // Asked to run ignored tests: one that cannot run here fails.
        Err(RunError::fail(format!("cannot run here: {why}")))
    }
}

/// Runs `tests` as libtest would, then lists the ones that did not run; exits with the
/// harness's verdict.
pub fn main(tests: Vec<Test>) -> ! {
    // This binary is also the listening process some tests start.
    if let Ok(port) = std::env::var(crate::support::LISTEN) {
        crate::support::listener_process(&port);
        std::process::exit(0);
    }
    if let Ok(path) = std::env::var(crate::support::HOLD) {
        crate::support::hold_process(&path);
        std::process::exit(0);
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Skipped>() {
            hook(info);
        }
    }));
    // libtest's spelling of showing output, as people type it.
    let args = std::env::args_os().map(|a| {
        if a == "--nocapture" {
            "--no-capture".into()
        } else {
            a
        }
    });
    let ran = libtest2_harness::Harness::new()
        .with_args(args)
        .and_then(|h| match h.parse() {
            Ok(h) => h.discover(tests),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        })
        .and_then(|h| h.run());
    let not_run = NOT_RUN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !not_run.is_empty() {
        let n = not_run.len();
        println!(
            "{n} test{} did not run here (counted as ignored, not as passed):",
            if n == 1 { "" } else { "s" }
        );
        let mut not_run = not_run;
        not_run.sort();
        for (name, why) in not_run {
            println!("  {name}: {why}");
        }
        println!();
    }
    match ran {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(101),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(101)
        }
    }
}
