use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use git_ports::cli::Cli;
use git_ports::{commands, output};

/// A `-w`/`--worktree` followed by a word that starts with `-`, which clap reads as an option.
fn dash_worktree() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.windows(2).find_map(|w| {
        (matches!(w[0].as_str(), "-w" | "--worktree") && w[1].starts_with('-') && w[1] != "--")
            .then(|| w[1].clone())
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = output::emit(&e.render().to_string());
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{}", e.render());
            return ExitCode::from(1);
        }
        Err(e) => {
            // clap's usage errors are the spec's "invalid arguments": exit 1, one line.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("git-ports: {}", first.trim_start_matches("error: "));
            match dash_worktree() {
                Some(name) => eprintln!(
                    "hint: to name a worktree that starts with '-', write {}",
                    output::shell_quote(&format!("--worktree={name}"))
                ),
                None => eprintln!("hint: see `git ports --help`"),
            }
            return ExitCode::from(1);
        }
    };
    let family = commands::family(&cli);
    let mut out = output::Out::default();
    let result = commands::run(cli, &mut out);
    out.say_warnings();
    if let Err(e) = output::emit(&out.text) {
        eprintln!("git-ports: cannot write to stdout: {e}");
        return ExitCode::from(1);
    }
    match result {
        Ok(outcome) => ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(1)),
        Err(e) => {
            // Names and paths in errors come from disk: shown escaped, never raw.
            eprintln!("git-ports: {}", output::escape(&e.to_string()));
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("caused by: {}", output::escape(&s.to_string()));
                source = s.source();
            }
            if let Some(hint) = e.hint() {
                eprintln!("hint: {}", output::escape(&hint));
            }
            ExitCode::from(u8::try_from(e.exit_code(family)).unwrap_or(1))
        }
    }
}
