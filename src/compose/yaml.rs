//! A compose file read as YAML (yaml-rust2's parser), keeping what doctor needs and a
//! plain tree loses: the line each value is written on, and tags such as `!override`.
//! Anchors and aliases are followed, and `<<` merge keys merged, as Compose does.

use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One value of the file, with the line it starts on (1-based) and its tag (`override`,
/// `reset`), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub tag: Option<String>,
    pub value: Tree,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// A scalar's text, and whether it was quoted (then it is never a number or a boolean).
    Scalar(String, bool),
    Seq(Vec<Node>),
    /// Keys in the order written.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Tree::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A mapping's entries; none for anything else.
    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Tree::Map(m) => m,
            _ => &[],
        }
    }

    /// A sequence's items; none for anything else.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Tree::Seq(s) => s,
            _ => &[],
        }
    }

    /// A scalar's text.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Tree::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// As JSON, with YAML 1.1/1.2 core scalars typed where they were not quoted.
    pub fn to_json(&self) -> Value {
        match &self.value {
            Tree::Scalar(s, quoted) => scalar(s, *quoted),
            Tree::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Tree::Map(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), v.to_json());
                }
                Value::Object(out)
            }
        }
    }
}

fn scalar(s: &str, quoted: bool) -> Value {
    if quoted {
        return Value::String(s.to_string());
    }
    match s {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(s.to_string())),
    }
}

/// Builds nodes from the parser's events.
#[derive(Default)]
struct Builder {
    /// Open collections: the node, and for a mapping the key waiting for its value, with
    /// the line the key is on.
    stack: Vec<(Node, Option<(String, usize)>)>,
    anchors: std::collections::HashMap<usize, Node>,
    /// The anchor of each open collection.
    anchor_of: Vec<usize>,
    done: Option<Node>,
}

impl Builder {
    /// A sequence or mapping begins.
    fn open(
        &mut self,
        line: usize,
        anchor: usize,
        tag: Option<yaml_rust2::parser::Tag>,
        value: Tree,
    ) {
        self.anchor_of.push(anchor);
        let tag = tag_name(tag);
        self.stack.push((Node { line, tag, value }, None));
    }

    fn push_value(&mut self, mut node: Node) {
        let Some((top, key)) = self.stack.last_mut() else {
            self.done = Some(node);
            return;
        };
        match &mut top.value {
            Tree::Seq(items) => items.push(node),
            Tree::Map(m) => match key.take() {
                None => {
                    let k = match &node.value {
                        Tree::Scalar(s, _) => s.clone(),
                        _ => String::new(),
                    };
                    *key = Some((k, node.line));
                }
                Some((k, _)) if k == "<<" => merge_into(m, node),
                Some((k, line)) => {
                    // A block collection starts at its first item: people look for its key.
                    if !matches!(node.value, Tree::Scalar(..)) {
                        node.line = line;
                    }
                    match m.iter_mut().find(|(e, _)| *e == k) {
                        Some(e) => e.1 = node,
                        None => m.push((k, node)),
                    }
                }
            },
            Tree::Scalar(..) => {}
        }
    }
}

/// A `<<: *base` (or `<<: [*a, *b]`): the keys not written here come from there.
fn merge_into(m: &mut Vec<(String, Node)>, from: Node) {
    let sources: Vec<Node> = match from.value {
        Tree::Seq(s) => s,
        _ => vec![from],
    };
    for src in sources {
        if let Tree::Map(entries) = src.value {
            for (k, v) in entries {
                if !m.iter().any(|(e, _)| *e == k) {
                    m.push((k, v));
                }
            }
        }
    }
}

fn tag_name(t: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    t.map(|t| t.suffix)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(s, style, anchor, tag) => {
                let node = Node {
                    line,
                    tag: tag_name(tag),
                    value: Tree::Scalar(s, style != TScalarStyle::Plain),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node);
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(line, anchor, tag, Tree::Seq(Vec::new()))
            }
            Event::MappingStart(anchor, tag) => self.open(line, anchor, tag, Tree::Map(Vec::new())),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    let anchor = self.anchor_of.pop().unwrap_or(0);
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push_value(node);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    line,
                    tag: None,
                    value: Tree::Scalar(String::new(), false),
                });
                self.push_value(node);
            }
            _ => {}
        }
    }
}

/// Reads one YAML document; the error is the parser's, with its line and column.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut b = Builder::default();
    let mut p = Parser::new_from_str(text);
    p.load(&mut b, false).map_err(|e| {
        let m = e.marker();
        format!("line {}, column {}: {}", m.line(), m.col() + 1, e.info())
    })?;
    Ok(b.done.unwrap_or(Node {
        line: 1,
        tag: None,
        value: Tree::Map(Vec::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_tags_anchors_and_merge_keys_are_kept() {
        let text = "x-base: &base\n  image: pg\n  restart: always\nservices:\n  db:\n    <<: *base\n    image: postgres\n    ports: !override\n      - \"5432:5432\"\n      - 6543\n";
        let n = parse(text).expect("parses");
        let db = n.get("services").and_then(|s| s.get("db")).expect("db");
        assert_eq!(db.line, 5);
        assert_eq!(db.get("image").and_then(Node::text), Some("postgres"));
        assert_eq!(db.get("restart").and_then(Node::text), Some("always"));
        let ports = db.get("ports").expect("ports");
        assert_eq!(ports.line, 8);
        assert_eq!(ports.tag.as_deref(), Some("override"));
        assert_eq!(ports.items()[0].line, 9);
        assert_eq!(
            db.to_json()["ports"],
            serde_json::json!(["5432:5432", 6543])
        );
        let err = parse("services:\n  db: [\n").expect_err("does not parse");
        assert!(err.starts_with("line 3,"), "{err}");
    }
}
