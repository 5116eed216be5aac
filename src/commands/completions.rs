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

fn longs(cmd: &clap::Command) -> String {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .chain(["--help".to_string()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `_git_ports` function for git's bash completion (`__gitcomp`, `__git_find_on_cmdline`).
fn git_bash(cmd: &clap::Command) -> String {
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let names: Vec<&str> = subs.iter().map(|c| c.get_name()).collect();
    let mut cases = String::new();
    for c in &subs {
        cases += &format!("\t{},--*) __gitcomp \"{}\" ;;\n", c.get_name(), longs(c));
        let nested: Vec<&str> = c
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name())
            .collect();
        if !nested.is_empty() {
            cases += &format!(
                "\t{},*) __gitcomp \"{}\" ;;\n",
                c.get_name(),
                nested.join(" ")
            );
        }
    }
    format!(
        r#"
# git's bash completion calls _git_<command> for `git <command>`.
_git_ports ()
{{
	local subcommands="{subs}"
	local subcommand="$(__git_find_on_cmdline "$subcommands")"
	if [ -z "$subcommand" ]; then
		case "$cur" in
		--*) __gitcomp "{top}" ;;
		*) __gitcomp "$subcommands" ;;
		esac
		return
	fi
	case "$subcommand,$cur" in
{cases}	allocate,*|available,*|get,*)
		__gitcomp "web api db redis grpc websocket $(git config --name-only --get-regexp '^ports\..*\.range$' 2>/dev/null | sed 's/^ports\.//; s/\.range$//')" ;;
	completions,*) __gitcomp "bash zsh fish" ;;
	esac
}}
"#,
        subs = names.join(" "),
        top = longs(cmd),
    )
}
