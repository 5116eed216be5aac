//! What stands between stdin and the SDK: whole lines only, each judged before the SDK sees
//! it, so that every line gets an answer and none is held in memory past its bound.

use serde_json::{Value, json};

/// The longest line the server reads: a request far larger than any tool call needs, and
/// well under the SDK's own limit, so every line gets an answer. A longer line is read
/// through to its end without being kept, and answered with an error.
pub const MAX_LINE: usize = 1 << 20;
/// The deepest nesting of arrays and objects a request may have (the SDK's JSON reader
/// stops at 128, silently).
pub const MAX_DEPTH: usize = 64;
/// JSON-RPC 2.0's error answer, with the request's id where it could be read.
fn rpc_error(id: Option<Value>, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": {"code": code, "message": message}})
        .to_string()
}

/// How deep a line's arrays and objects nest, and the `id` of the object it holds, if its
/// top level has one that is a number or a string: read without parsing, so a line too deep
/// for any parser is still answered with its id.
fn shape(line: &[u8]) -> (usize, Option<Value>) {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut id = None;
    // At the top level of an object: the next string is a key; the key just read was `id`;
    // its value comes next.
    let (mut want_key, mut key_is_id, mut id_next) = (false, false, false);
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < line.len() && line[i] != b'"' {
                    i += if line[i] == b'\\' { 2 } else { 1 };
                }
                let text = line.get(start..=i.min(line.len() - 1)).unwrap_or_default();
                if depth == 1 && want_key {
                    key_is_id = text == b"\"id\"";
                    want_key = false;
                } else if id_next {
                    id = serde_json::from_slice(text).ok();
                    id_next = false;
                }
            }
            b'{' | b'[' => {
                id_next = false;
                depth += 1;
                deepest = deepest.max(depth);
                want_key = depth == 1 && line[i] == b'{';
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => want_key = true,
            b':' if depth == 1 => id_next = key_is_id,
            b'-' | b'0'..=b'9' if id_next => {
                let start = i;
                while i + 1 < line.len()
                    && matches!(line[i + 1], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                id = serde_json::from_slice(&line[start..=i]).ok();
                id_next = false;
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => id_next = false,
        }
        i += 1;
    }
    (deepest, id)
}

/// What the server makes of one line before the SDK sees it: the line to pass on, or the
/// error to answer it with.
fn judge(line: &[u8]) -> Result<(), String> {
    let (depth, id) = shape(line);
    if depth > MAX_DEPTH {
        return Err(rpc_error(
            id,
            -32600,
            &format!("Invalid request: nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(rpc_error(id, -32700, "Parse error: not UTF-8"));
    };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(rpc_error(id, -32700, "Parse error: not JSON"));
    }
    Ok(())
}

/// Reads one line of at most [`MAX_LINE`] bytes into `buf` (without its newline). `Ok(false)`
/// at the end of input; a longer line is read to its end and dropped, leaving `buf` holding
/// its first bytes and `long` set.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
    buf: &mut Vec<u8>,
    long: &mut bool,
) -> std::io::Result<bool> {
    use tokio::io::AsyncBufReadExt;
    buf.clear();
    *long = false;
    let mut any = false;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(n) => (&chunk[..n], n + 1),
            None => (chunk, chunk.len()),
        };
        if buf.len() + part.len() > MAX_LINE {
            *long = true;
            let room = MAX_LINE.saturating_sub(buf.len());
            buf.extend_from_slice(&part[..room.min(part.len())]);
        } else {
            buf.extend_from_slice(part);
        }
        let ended = done > part.len();
        input.consume(done);
        if ended {
            return Ok(true);
        }
    }
}

/// Carries stdin's lines to the SDK and the SDK's lines to stdout, whole lines only. A line
/// the SDK would drop without a word (not UTF-8, not JSON, too long, too deep) is answered
/// here instead, with JSON-RPC's error and the request's id where it can be read, and the
/// session goes on. When stdin ends, the SDK sees its input end; this returns once the
/// SDK's last line is out.
pub(super) async fn relay(sdk: tokio::io::DuplexStream) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (from_sdk, mut to_sdk) = tokio::io::split(sdk);
    // Bounded: a client that floods bad lines and reads no answers stops being read.
    let (errors, mut answers_here) = tokio::sync::mpsc::channel::<String>(64);
    let input = async move {
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        let mut long = false;
        while let Ok(true) = read_line(&mut stdin, &mut line, &mut long).await {
            if line.trim_ascii().is_empty() && !long {
                continue;
            }
            let verdict = if long {
                Err(rpc_error(
                    shape(&line).1,
                    -32600,
                    &format!("Invalid request: a line over {MAX_LINE} bytes"),
                ))
            } else {
                judge(&line)
            };
            if let Err(answer) = verdict {
                if errors.send(answer).await.is_err() {
                    break;
                }
                continue;
            }
            line.push(b'\n');
            if to_sdk.write_all(&line).await.is_err() {
                break;
            }
        }
        let _ = to_sdk.shutdown().await;
    };
    let output = async move {
        let mut stdout = tokio::io::stdout();
        let mut answers = BufReader::new(from_sdk).lines();
        let mut open = true;
        loop {
            let line = tokio::select! {
                l = answers.next_line() => match l {
                    Ok(Some(l)) => l,
                    _ => break,
                },
                e = answers_here.recv(), if open => match e {
                    Some(e) => e,
                    None => {
                        open = false;
                        continue;
                    }
                },
            };
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            if stdout.write_all(&bytes).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    };
    // The input may wait on stdin forever once the session has ended some other way: only
    // the output, which ends with the session, is waited for.
    tokio::spawn(input);
    output.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_judged_before_the_sdk_sees_it() {
        assert_eq!(judge(br#"{"jsonrpc":"2.0","id":3,"method":"x"}"#), Ok(()));
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":7,"params":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        let e = judge(deep.as_bytes()).expect_err("too deep");
        assert!(e.contains(r#""id":7"#) && e.contains("-32600"), "{e}");
        let e = judge(b"{\"id\":\"a\",\"x\":\"\xff\"}").expect_err("not UTF-8");
        assert!(e.contains(r#""id":"a""#) && e.contains("-32700"), "{e}");
        assert_eq!(shape(br#"{"params":{"id":5},"id":-2}"#).1, Some(json!(-2)));
        assert_eq!(shape(br#"{"a":"id","b":[{"id":1}]}"#).1, None);
        assert_eq!(shape(br#"{"s":"\"}","id":9}"#), (1, Some(json!(9))));
    }
}
