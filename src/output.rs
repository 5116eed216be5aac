//! Rendering: the output buffer, the colour decision, ages, and printing that treats a closed
//! stdout (`git ports available web | head -1`) as success.

use std::io::{self, IsTerminal, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::ColorChoice;

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
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

/// What a command prints on stdout, gathered so it goes out in one write.
#[derive(Debug, Default)]
pub struct Out {
    pub text: String,
    pub color: bool,
    /// Printed on stderr as `git-ports: warning: …`, whatever happens on stdout.
    pub warnings: Vec<String>,
}

impl Out {
    pub fn new(color: bool) -> Self {
        Out {
            text: String::new(),
            color,
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, s: impl Into<String>) {
        self.warnings.push(s.into());
    }

    pub fn line(&mut self, s: impl AsRef<str>) {
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

    pub fn json<T: Serialize>(&mut self, value: &T) {
        let s = serde_json::to_string_pretty(value).unwrap_or_default();
        self.line(s);
    }
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
    fn quoting() {
        assert_eq!(shell_quote("feature-x"), "feature-x");
        assert_eq!(shell_quote("it's $(x)"), r"'it'\''s $(x)'");
        assert_eq!(shell_quote(""), "''");
    }
}
