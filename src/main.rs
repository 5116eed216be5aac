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

/// The subcommand named on the command line, if any.
fn subcommand() -> Option<String> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .find(|a| !a.starts_with('-'))
        .filter(|a| names.contains(a))
}

/// clap's error as one line, with the context its first line leaves out.
fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let words = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::StyledStr(s)) => vec![s.to_string()],
        Some(ContextValue::StyledStrs(v)) => v.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    };
    let quoted = |v: Vec<String>| -> String {
        v.iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    match e.kind() {
        ErrorKind::MissingRequiredArgument => {
            format!("missing {}", words(ContextKind::InvalidArg).join(", "))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let valid = words(ContextKind::ValidValue);
            if valid.is_empty() {
                first
            } else {
                format!("{first} (possible values: {})", valid.join(", "))
            }
        }
        ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument => {
            let like = [ContextKind::SuggestedSubcommand, ContextKind::SuggestedArg]
                .into_iter()
                .flat_map(words)
                .collect::<Vec<_>>();
            if like.is_empty() {
                first
            } else {
                format!("{first}; did you mean {}?", quoted(like))
            }
        }
        _ => first,
    }
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
            // clap's usage errors are the spec's "invalid arguments": exit 1, one line that
            // keeps what matters (what is missing, the possible values, the likely typo).
            let sub = subcommand();
            eprintln!("git-ports: {}", usage_line(&e));
            match (dash_worktree(), sub.as_deref(), e.kind()) {
                (Some(name), _, _) => eprintln!(
                    "hint: to name a worktree that starts with '-', write {}",
                    output::shell_quote(&format!("--worktree={name}"))
                ),
                (None, Some("exec"), ErrorKind::UnknownArgument) => eprintln!(
                    "hint: the command goes after `--`: git ports exec -- COMMAND [ARG]..."
                ),
                (None, Some("release"), ErrorKind::MissingRequiredArgument) => eprintln!(
                    "hint: name the ports to release, or release all of a worktree's with `git ports release --worktree WORKTREE`"
                ),
                (None, Some(sub), ErrorKind::MissingRequiredArgument)
                    if usage_line(&e).contains("<SERVICE>") =>
                {
                    eprintln!(
                        "hint: name a service: {} (see `git ports {sub} -h`)",
                        commands::known_services().join(", ")
                    )
                }
                (None, Some(sub), _) => eprintln!("hint: see `git ports {sub} -h`"),
                (None, None, _) => eprintln!("hint: see `git ports -h`"),
            }
            return ExitCode::from(1);
        }
    };
    let family = commands::family(&cli);
    let mut out = output::Out::default();
    let result = commands::run(cli, &mut out);
    if let Some(n) = git_ports::machine::docker::notice() {
        out.warn(n);
    }
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
