//! The marked block git-ports keeps in a file of the user's (an env file, a hook): found,
//! replaced, added and removed by whole lines, the same way for every kind of file.
//!
//! A marker is a whole line holding exactly [`BEGIN`] or [`END`] (trailing blanks and a CR
//! aside): a line that merely quotes the marker text is the user's. A file is rewritten only
//! when it holds no block or exactly one well-formed block; an unterminated, nested or
//! repeated block, or an end marker with no start, is refused with the line numbers, so no
//! line of the user's is ever taken for ours.

pub const BEGIN: &str = "# >>> git-ports >>>";
pub const END: &str = "# <<< git-ports <<<";

/// Where the block is: the 0-based indexes of its marker lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub begin: usize,
    pub end: usize,
}

/// The file's lines, each with its line ending.
pub fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&b| b == b'\n').collect()
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is(line: &[u8], marker: &str) -> bool {
    let mut l = strip_eol(line);
    while let Some(rest) = l.strip_suffix(b" ").or_else(|| l.strip_suffix(b"\t")) {
        l = rest;
    }
    l == marker.as_bytes()
}

/// The one block the file holds, if any; why the file cannot be rewritten otherwise.
pub fn find(bytes: &[u8]) -> Result<Option<Span>, String> {
    let mut open: Option<usize> = None;
    let mut found: Option<Span> = None;
    for (i, line) in lines(bytes).iter().enumerate() {
        if is(line, BEGIN) {
            if let Some(b) = open {
                return Err(format!(
                    "line {} opens a git-ports block and line {} opens another before it is closed",
                    b + 1,
                    i + 1
                ));
            }
            open = Some(i);
        } else if is(line, END) {
            let Some(b) = open.take() else {
                return Err(format!(
                    "line {} closes a git-ports block that no line opens",
                    i + 1
                ));
            };
            if let Some(first) = found {
                return Err(format!(
                    "it holds two git-ports blocks (lines {}-{} and {}-{})",
                    first.begin + 1,
                    first.end + 1,
                    b + 1,
                    i + 1
                ));
            }
            found = Some(Span { begin: b, end: i });
        }
    }
    if let Some(b) = open {
        return Err(format!(
            "line {} opens a git-ports block that no line closes",
            b + 1
        ));
    }
    Ok(found)
}

/// The reason a file with broken markers is refused, for its one line.
pub fn refused(why: &str) -> String {
    format!("{why}; nothing was written (mend the markers by hand)")
}

/// The line ending the file uses: CRLF when its first line ends so, else LF.
pub fn eol(bytes: &[u8]) -> &'static str {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && bytes[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// The block holding `body`, each line ended with `eol`.
pub fn render(body: &[String], eol: &str) -> Vec<u8> {
    let mut b = String::new();
    for l in std::iter::once(BEGIN)
        .chain(body.iter().map(String::as_str))
        .chain(std::iter::once(END))
    {
        b.push_str(l);
        b.push_str(eol);
    }
    b.into_bytes()
}

/// The lines between the markers, without their endings.
pub fn body(bytes: &[u8], span: Span) -> Vec<String> {
    lines(bytes)[span.begin + 1..span.end]
        .iter()
        .map(|l| String::from_utf8_lossy(strip_eol(l)).into_owned())
        .collect()
}

/// The file with the block at `span` replaced by `block`.
pub fn replace(bytes: &[u8], span: Span, block: &[u8]) -> Vec<u8> {
    let ls = lines(bytes);
    let mut out: Vec<u8> = ls[..span.begin].concat();
    out.extend_from_slice(block);
    out.extend(ls[span.end + 1..].concat());
    out
}

/// The file with `block` put before line `at` (0-based; the number of lines appends it). A
/// last line without an ending gets one first.
pub fn insert(bytes: &[u8], at: usize, block: &[u8]) -> Vec<u8> {
    let ls = lines(bytes);
    let at = at.min(ls.len());
    let mut out: Vec<u8> = ls[..at].concat();
    if out.last().is_some_and(|&b| b != b'\n') {
        out.extend_from_slice(eol(bytes).as_bytes());
    }
    out.extend_from_slice(block);
    out.extend(ls[at..].concat());
    out
}

/// The file without the block at `span`: exactly what it was before the block was inserted.
pub fn remove(bytes: &[u8], span: Span) -> Vec<u8> {
    replace(bytes, span, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn only_whole_lines_are_markers() {
        let quoted = format!("# the block starts at '{BEGIN}'\nA=1\n");
        assert_eq!(find(quoted.as_bytes()), Ok(None));
        let one = format!("A=1\n{BEGIN}\nX=1\n{END}  \r\nB=2\n");
        assert_eq!(find(one.as_bytes()), Ok(Some(Span { begin: 1, end: 3 })));
        assert_eq!(body(one.as_bytes(), Span { begin: 1, end: 3 }), ["X=1"]);
    }

    #[test]
    fn broken_blocks_are_refused_with_their_lines() {
        let cases = [
            (
                format!("A=1\n{BEGIN}\nX=1\nDATABASE_URL=x\n"),
                "line 2 opens a git-ports block that no line closes",
            ),
            (
                format!("{BEGIN}\nA=1\n{BEGIN}\nX\n{END}\n"),
                "line 1 opens a git-ports block and line 3 opens another before it is closed",
            ),
            (
                format!("{BEGIN}\n{END}\nA=1\n{BEGIN}\n{END}\n"),
                "it holds two git-ports blocks (lines 1-2 and 4-5)",
            ),
            (
                format!("A=1\n{END}\n"),
                "line 2 closes a git-ports block that no line opens",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(find(text.as_bytes()), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn insert_then_remove_gives_the_file_back() {
        for text in ["", "#!/bin/sh\necho hi\n", "A=1", "A=1\r\nB=2\r\n"] {
            let block = render(&["X=1".into()], eol(&b(text)));
            for at in [0, 1, 9] {
                let with = insert(&b(text), at, &block);
                let span = find(&with).ok().flatten();
                let Some(span) = span else {
                    panic!("no block in {with:?}");
                };
                let back = remove(&with, span);
                if text.ends_with('\n') || text.is_empty() || at == 0 {
                    assert_eq!(back, b(text), "{text:?} at {at}");
                }
            }
        }
        let crlf = b("A=1\r\n");
        let with = insert(&crlf, 9, &render(&["X=1".into()], eol(&crlf)));
        assert_eq!(
            with,
            b(&format!("A=1\r\n{BEGIN}\r\nX=1\r\n{END}\r\n")),
            "CRLF kept"
        );
    }
}
