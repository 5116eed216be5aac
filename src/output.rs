//! Rendering: the output buffer, the colour decision, ages, and printing that treats a closed
//! stdout (`git ports available web | head -1`) as success.

use std::io::{self, IsTerminal, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

/// Whether to colour output, from `color.ports` / `color.ui`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Whether to colour stdout: git's `color.ports` / `color.ui`, `NO_COLOR`, and a terminal.
pub fn use_color(choice: ColorChoice) -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => io::stdout().is_terminal(),
    }
}

/// What a command prints on stdout, gathered so it goes out in one write, and the one
/// channel for its warnings: said on stderr as `git-ports: warning: …` when it ends (or
/// before `exec` hands over), whatever happens on stdout. A wait that is still going on is
/// said at once, with [`notice`].
#[derive(Debug, Default)]
pub struct Out {
    pub text: String,
    pub color: bool,
    warnings: std::cell::RefCell<Vec<String>>,
}

impl Out {
    pub fn new(color: bool) -> Self {
        Out {
            text: String::new(),
            color,
            warnings: Default::default(),
        }
    }

    /// A warning about something that took effect, or was left out, and deserves a word.
    pub fn warn(&self, s: impl Into<String>) {
        self.warnings.borrow_mut().push(s.into());
    }

    pub fn warn_all(&self, all: impl IntoIterator<Item = String>) {
        self.warnings.borrow_mut().extend(all);
    }

    /// Says the warnings gathered so far on stderr, escaped.
    pub fn say_warnings(&self) {
        for w in self.warnings.borrow_mut().drain(..) {
            eprintln!("git-ports: warning: {}", escape(&w));
        }
    }

    /// One line for people: control characters from names and paths are shown escaped.
    pub fn line(&mut self, s: impl AsRef<str>) {
        let line = escape_line(s.as_ref(), self.color);
        self.text.push_str(&line);
        self.text.push('\n');
    }

    /// One line exactly as given, for output already quoted for its reader (the shell lines
    /// of `env`) when stdout is not a terminal: `eval "$(git ports env)"` must see the very
    /// values `exec` passes.
    pub fn exact(&mut self, s: impl AsRef<str>) {
        if io::stdout().is_terminal() {
            return self.line(s);
        }
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }

    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// A heading underlined with `=` as the spec's reports are.
    pub fn heading(&mut self, s: &str) {
        let rule = "=".repeat(s.chars().count());
        let h = self.paint(s, Style::Bold);
        self.line(h);
        self.line(rule);
    }

    pub fn paint(&self, s: &str, style: Style) -> String {
        if !self.color {
            return s.to_string();
        }
        let code = match style {
            Style::Good => "32",
            Style::Bad => "31",
            Style::Warn => "33",
            Style::Dim => "2",
            Style::Bold => "1",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }

    /// JSON for scripts: exact, since JSON escapes control characters itself.
    pub fn json<T: Serialize>(&mut self, value: &T) {
        let s = serde_json::to_string_pretty(value).unwrap_or_default();
        self.text.push_str(&s);
        self.text.push('\n');
    }
}

/// Says at once, on stderr, what a command is waiting for.
pub fn notice(s: &str) {
    eprintln!("git-ports: {}", escape(s));
}

/// Writes to stdout; a reader that went away is not an error.
pub fn emit(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `2024-01-15T10:30:00Z`.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2024-01-15T10:30:00Z (2 days ago)`.
pub fn with_age(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    format!("{} ({})", timestamp(t), age(t, now))
}

/// How long ago `t` was, in the largest whole unit: `just now`, `1 minute ago`, `2 days ago`.
pub fn age(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = (*now - *t).num_seconds();
    if secs < 0 {
        return "in the future".into();
    }
    let units = [
        (86_400 * 365, "year"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ];
    for (size, name) in units {
        let n = secs / size;
        if n > 0 {
            let s = if n == 1 { "" } else { "s" };
            return format!("{n} {name}{s} ago");
        }
    }
    "just now".into()
}

/// Quotes a word for a POSIX shell when it needs it, so names from the repository can be
/// pasted into commands safely.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `--worktree NAME` for a hint, shell-quoted; `--worktree=-x` for a name that starts with a
/// dash, which would otherwise read as an option.
/// `git -C '/src/shop' ports ARGS`: a command that works pasted into any terminal, wherever
/// it is (a hint the proxy gives in a browser page, far from the repository).
pub fn git_in(dir: &std::path::Path, args: &str) -> String {
    format!(
        "git -C {} ports {args}",
        shell_quote(&dir.display().to_string())
    )
}

pub fn worktree_arg(name: &str) -> String {
    if name.starts_with('-') {
        shell_quote(&format!("--worktree={name}"))
    } else {
        format!("--worktree {}", shell_quote(name))
    }
}

/// Text from disk made safe for a terminal, as git quotes paths: control characters become
/// `\t`, `\n`, `\e`, … or `\ooo`; everything else is kept.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// Escapes the control characters of a line, except the colour codes [`Out::paint`] makes
/// (`ESC [ digits m`), so nothing read from disk can move the cursor, clear the screen or
/// retitle the terminal.
fn escape_line(s: &str, keep_colour: bool) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if keep_colour && c == '\x1b' {
            let code = rest[1..]
                .strip_prefix('[')
                .and_then(|r| r.find('m').map(|i| &r[..i]));
            if let Some(code) =
                code.filter(|c| c.len() <= 2 && c.chars().all(|d| d.is_ascii_digit()))
            {
                let len = 3 + code.len();
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        out.push_str(&escape(&rest[..c.len_utf8()]));
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn ages() {
        let now = Utc::now();
        assert_eq!(age(&now, &now), "just now");
        assert_eq!(age(&(now - Duration::seconds(61)), &now), "1 minute ago");
        assert_eq!(age(&(now - Duration::days(2)), &now), "2 days ago");
        assert_eq!(age(&(now + Duration::days(2)), &now), "in the future");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("evil\x1b]0;PWNED\x07\x1b[2J"),
            "evil\\e]0;PWNED\\a\\e[2J"
        );
        assert_eq!(
            escape_line("\x1b[32mok\x1b[0m \x1b[2J", true),
            "\x1b[32mok\x1b[0m \\e[2J"
        );
        assert_eq!(escape_line("\x1b[32mok", false), "\\e[32mok");
        assert_eq!(worktree_arg("-dash"), "--worktree=-dash");
        assert_eq!(worktree_arg("wt`id`"), "--worktree 'wt`id`'");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("feature-x"), "feature-x");
        assert_eq!(shell_quote("it's $(x)"), r"'it'\''s $(x)'");
        assert_eq!(shell_quote(""), "''");
    }
}
