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
        Shell::PowerShell => clap_complete::Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "git-ports", &mut buf);
    let script = String::from_utf8_lossy(&buf);
    match args.shell {
        Shell::Bash => {
            out.text.push_str(&script);
            out.text.push_str(&git_bash(&Cli::command()));
        }
        Shell::Zsh => out.text.push_str(&zsh(&script)),
        Shell::Fish => out.text.push_str(&fish(&script)),
        Shell::PowerShell => out.text.push_str(&powershell(&script)),
    }
    Ok(())
}

/// The long flags the definitions hide (the script's forms `allocate --release/--check/
/// --available`): kept working, never offered.
fn hidden_flags() -> Vec<String> {
    let cmd = Cli::command();
    let mut flags: Vec<String> = cmd
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .filter(|a| a.is_hide_set())
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// Whether a generated line offers something hidden: the `complete` command, which is not
/// for people, or a hidden flag.
fn offers_hidden(line: &str, hidden: &[String]) -> bool {
    line.contains("'complete:")
        || line.contains("-a \"complete\"")
        || hidden.iter().any(|f| {
            line.contains(&format!(")--{f}="))
                || line.contains(&format!("'--{f}="))
                || line.contains(&format!(")*--{f}="))
                || line.contains(&format!(" -l {f} "))
        })
}

/// clap's zsh function, with worktree names, branches and services asked of the repository
/// at completion time, commands after `exec --`, and the hidden command left out.
fn zsh(script: &str) -> String {
    let hidden = hidden_flags();
    let mut out = String::new();
    for line in script.lines().filter(|l| !offers_hidden(l, &hidden)) {
        let line = line
            .replace(":WORKTREE:_default'", ":WORKTREE:_git_ports_worktrees'")
            .replace(":SERVICE:_default'", ":SERVICE:_git_ports_services'")
            .replace(
                ":SERVICE,…:_default'",
                ":SERVICE,…:_git_ports_services -s ,'",
            );
        let positional_service = line.starts_with("':service -- ")
            || line.starts_with("'*::services -- ")
            || line.starts_with("'::service -- ");
        let positional_worktree =
            line.starts_with("'::worktree -- ") || line.starts_with("':worktree -- ");
        let line = if positional_service && line.ends_with(":_default' \\") {
            line.replace(":_default' \\", ":_git_ports_services' \\")
        } else if positional_worktree && line.ends_with(":_default' \\") {
            line.replace(":_default' \\", ":_git_ports_worktrees' \\")
        } else if line.contains("::command -- ") {
            line.replace(":_default'", ":_normal'")
        } else {
            line
        };
        if line.starts_with("if [ \"$funcstack[1]\" = \"_git-ports\" ]") {
            out.push_str(ZSH_HELPERS);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

const ZSH_HELPERS: &str = r#"# Worktree names and branches, and services, asked of the repository at completion time.
(( $+functions[_git_ports_worktrees] )) ||
_git_ports_worktrees() {
    local -a words
    words=(${(f)"$(git-ports complete worktrees 2>/dev/null)"})
    compadd "$@" -a words
}
(( $+functions[_git_ports_services] )) ||
_git_ports_services() {
    local -a words
    words=(${(f)"$(git-ports complete services 2>/dev/null)"})
    compadd "$@" -a words
}

"#;

/// clap's fish completions, with worktree names, branches and services asked of the
/// repository, commands after `exec --`, the hidden command left out, and `git ports <TAB>`
/// served too (fish 3.6's git completion looks for `git-ports` under the wrong name).
fn fish(script: &str) -> String {
    let hidden = hidden_flags();
    // A file left in conf.d after git-ports is gone defines nothing, and says nothing.
    let mut out = String::from("command -q git-ports; or return\n");
    for line in script.lines().filter(|l| !offers_hidden(l, &hidden)) {
        let line = if line.contains(" -l worktree ") && line.ends_with(" -r") {
            format!("{line} -f -a \"(git-ports complete worktrees 2>/dev/null)\"")
        } else if (line.contains(" -l service ")
            || line.contains(" -l services ")
            || line.contains(" -l available "))
            && line.ends_with(" -r")
        {
            format!("{line} -f -a \"(git-ports complete services 2>/dev/null)\"")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(FISH_EXTRA);
    out
}

const FISH_EXTRA: &str = r#"
# Services and worktrees as arguments, asked of the repository at completion time.
complete -c git-ports -n "__fish_git_ports_using_subcommand allocate get wait available" -f -a "(git-ports complete services 2>/dev/null)"
complete -c git-ports -n "__fish_git_ports_using_subcommand point" -f -a "(git-ports complete worktrees 2>/dev/null)"
# After `exec --`, a command line of its own.
complete -c git-ports -n "__fish_git_ports_using_subcommand exec; and contains -- -- (commandline -opc)" -f -a "(__fish_complete_subcommand --fcs-skip=(math (contains -i -- -- (commandline -opc))))"

# `git ports <TAB>`: hand the words after `ports` to git-ports' completions. This needs the file
# loaded before git's own completion runs: install it in ~/.config/fish/conf.d/.
function __fish_git_ports_from_git
    set -l cmd (commandline -opc)
    test (count $cmd) -ge 2; and test "$cmd[2]" = ports
end
function __fish_git_ports_complete_from_git
    set -l cmd (commandline -opc)
    complete -C "git-ports $cmd[3..] "(commandline -ct)
end
complete -c git -f -n __fish_git_ports_from_git -a "(__fish_git_ports_complete_from_git)"
"#;

/// clap's PowerShell completer for `git-ports`, without the hidden command and flags.
fn powershell(script: &str) -> String {
    let hidden = hidden_flags();
    script
        .lines()
        .filter(|l| {
            !(l.contains("'complete'") || hidden.iter().any(|f| l.contains(&format!("'--{f}'"))))
        })
        .map(|l| format!("{l}\n"))
        .collect()
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

/// Whether a subcommand's positional arguments are values named `name` (SERVICE, WORKTREE).
fn takes(cmd: &clap::Command, name: &str) -> bool {
    cmd.get_arguments().any(|a| {
        a.is_positional()
            && a.get_value_names()
                .is_some_and(|v| v.iter().any(|n| n == name))
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
            if takes(c, "SERVICE") {
                cases += &format!(
                    "\t{},*) __gitcomp_nl \"$(git ports complete services 2>/dev/null)\" ;;\n",
                    c.get_name()
                );
            } else if takes(c, "WORKTREE") {
                cases += &format!(
                    "\t{},*) __gitcomp_nl \"$(git ports complete worktrees 2>/dev/null)\" ;;\n",
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
	# After `exec --`: a command, then that command's own arguments (files).
	if [ "$subcommand" = exec ]; then
		local i=1 dashes=0
		while [ $i -lt $cword ]; do
			[ "${{words[i]}}" = "--" ] && dashes=$i
			i=$((i+1))
		done
		if [ $dashes -gt 0 ]; then
			if [ $((dashes+1)) -eq $cword ]; then
				COMPREPLY=($(compgen -c -- "$cur"))
			else
				COMPREPLY=($(compgen -f -- "$cur"))
			fi
			return
		fi
	fi
	if [ -z "$subcommand" ]; then
		case "$cur" in
		-*) __gitcomp "{top}" ;;
		*) __gitcomp "$subcommands" ;;
		esac
		return
	fi
	case "$subcommand,$cur" in
{cases}	completions,*) __gitcomp "bash zsh fish powershell" ;;
	esac
}}
"#,
        subs = names.join(" "),
        top = longs(cmd),
    )
}
