//! `git ports completions SHELL`: completion scripts from the clap definitions. For bash it
//! adds `_git_ports`, which git's own completion calls for `git ports <TAB>`.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::error::Result;
use crate::output::Out;

pub fn run(out: &mut Out, args: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "git-ports", &mut buf);
    out.text.push_str(&String::from_utf8_lossy(&buf));
    if args.shell == Shell::Bash {
        out.text.push_str(&git_bash(&Cli::command()));
    }
    Ok(())
}

/// Prints what completion offers, one per line: worktree names and branches, or services.
/// Outside a repository, or on any error, it prints what it can (services from the global
/// config), never an error.
pub fn candidates(out: &mut Out, what: &str) {
    let repo = crate::repo::Repo::open().or_else(|_| crate::repo::Repo::outside());
    let Ok(repo) = repo else { return };
    let mut words: Vec<String> = match what {
        "worktrees" => repo
            .worktrees()
            .iter()
            .flat_map(|w| {
                std::iter::once(w.name.clone()).chain(w.head.branch().map(str::to_string))
            })
            .collect(),
        "services" => repo.settings.known(),
        _ => Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    for w in words {
        out.line(w);
    }
}

fn longs(cmd: &clap::Command) -> String {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .chain(["--help".to_string()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a subcommand's positional arguments are services.
fn takes_services(cmd: &clap::Command) -> bool {
    cmd.get_arguments().any(|a| {
        a.is_positional()
            && a.get_value_names()
                .is_some_and(|v| v.iter().any(|n| n == "SERVICE"))
    })
}

/// The `_git_ports` function for git's bash completion (`__gitcomp`, `__gitcomp_nl`,
/// `__git_find_on_cmdline`; `cur` and `prev` are git's). Worktree names, branches and
/// services come from the repository at completion time (`git ports complete …`).
fn git_bash(cmd: &clap::Command) -> String {
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let names: Vec<&str> = subs.iter().map(|c| c.get_name()).collect();
    let mut cases = String::new();
    for c in &subs {
        let nested: Vec<&clap::Command> =
            c.get_subcommands().filter(|s| !s.is_hide_set()).collect();
        if nested.is_empty() {
            cases += &format!("\t{},-*) __gitcomp \"{}\" ;;\n", c.get_name(), longs(c));
            if takes_services(c) {
                cases += &format!(
                    "\t{},*) __gitcomp_nl \"$(git ports complete services 2>/dev/null)\" ;;\n",
                    c.get_name()
                );
            }
            continue;
        }
        let nested_names: Vec<&str> = nested.iter().map(|n| n.get_name()).collect();
        let mut inner = String::new();
        for n in &nested {
            inner += &format!("\t\t{},-*) __gitcomp \"{}\" ;;\n", n.get_name(), longs(n));
        }
        cases += &format!(
            "\t{name},*)\n\t\tlocal nested=\"$(__git_find_on_cmdline \"{list}\")\"\n\t\tcase \"$nested,$cur\" in\n{inner}\t\t,-*) __gitcomp \"{own}\" ;;\n\t\t,*) __gitcomp \"{list}\" ;;\n\t\tesac ;;\n",
            name = c.get_name(),
            list = nested_names.join(" "),
            own = longs(c),
        );
    }
    format!(
        r#"
# git's bash completion calls _git_<command> for `git <command>`.
_git_ports ()
{{
	case "$cur" in
	--worktree=*)
		__gitcomp_nl "$(git ports complete worktrees 2>/dev/null)" "" "${{cur#--worktree=}}"
		return ;;
	--service=*|--available=*)
		__gitcomp_nl "$(git ports complete services 2>/dev/null)" "" "${{cur#*=}}"
		return ;;
	--format=*)
		__gitcomp "shell dotenv json" "" "${{cur#--format=}}"
		return ;;
	esac
	case "$prev" in
	-w|--worktree)
		__gitcomp_nl "$(git ports complete worktrees 2>/dev/null)"
		return ;;
	--service|--services|--available)
		__gitcomp_nl "$(git ports complete services 2>/dev/null)"
		return ;;
	--format)
		__gitcomp "shell dotenv json"
		return ;;
	esac
	local subcommands="{subs}"
	local subcommand="$(__git_find_on_cmdline "$subcommands")"
	if [ -z "$subcommand" ]; then
		case "$cur" in
		-*) __gitcomp "{top}" ;;
		*) __gitcomp "$subcommands" ;;
		esac
		return
	fi
	case "$subcommand,$cur" in
{cases}	completions,*) __gitcomp "bash zsh fish" ;;
	esac
}}
"#,
        subs = names.join(" "),
        top = longs(cmd),
    )
}
