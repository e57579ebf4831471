//! The single YAML entry point of the crate.
//!
//! YAML text is parsed by `serde-saphyr` (the only place in the crate that names the YAML
//! crate) into a small located tree ([`Node`]), and typed values are then deserialized from that
//! tree by a deserializer that tracks the key path. Every error therefore names the key path
//! (`max_pars.lm_pars.maxfev`), its line and column, and what was expected.
//!
//! Going through a tree also gives the Y1 compatibility layer (`compat.rs`) a place to rewrite
//! old keys before the typed pass, and lets us mimic PyYAML where the ngmixer configs rely on it:
//!
//! * duplicate keys: the last value wins (PyYAML behaviour); each duplicate is reported;
//! * YAML 1.1 booleans (`yes`, `no`, `on`, `off`, any case) are accepted where a bool is expected;
//! * integers are accepted where a float is expected;
//! * integers with leading zeros (`001`) stay strings (they are version names in run configs).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Error;

/// Largest accepted config text, in bytes (configs are a few kB).
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Deserialize a typed value from YAML text. This is the one function through which the crate
/// reads YAML.
///
/// `file` is only used in error messages (use `"<string>"` for in-memory text).
///
/// # Errors
/// [`Error::Config`] naming `file` when the text is not valid YAML (with line and column), or
/// when it does not match `T`: the message names the key path (e.g. `max_pars.ntry`), its line
/// and column, and the expected type, or the unknown key, with a suggestion when a known key is
/// spelled similarly.
pub fn from_yaml_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Error> {
    let tree = parse_tree(text, file)?;
    from_tree(&tree, file)
}

/// Parse YAML text into a located tree.
pub(crate) fn parse_tree(text: &str, file: &str) -> Result<Node, Error> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(config_err(
            file,
            format!(
                "file is {} bytes, more than the {MAX_CONFIG_BYTES} accepted for a config",
                text.len()
            ),
        ));
    }
    // Configs have a few hundred nodes and no aliases: tight limits keep hostile input
    // (alias bombs, huge flat maps) cheap.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_CONFIG_DEPTH;
    budget.max_nodes = 20_000;
    budget.max_events = 40_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_recorded_anchor_events = 5_000;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = 5_000;
    alias_limits.max_replay_stack_depth = MAX_CONFIG_DEPTH;
    let options = serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: alias_limits,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        leading_zero_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    DUPLICATES.with(|d| d.borrow_mut().clear());
    DEPTH.with(|d| d.set(0));
    let parsed: Result<Option<Node>, _> = serde_saphyr::from_str_with_options(text, options);
    match parsed {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Ok(Node {
            kind: NodeKind::Null,
            line: 1,
            col: 1,
        }),
        Err(e) => Err(config_err(file, format!("invalid YAML: {e}"))),
    }
}

/// Deserialize a typed value from a tree.
pub(crate) fn from_tree<T: DeserializeOwned>(tree: &Node, file: &str) -> Result<T, Error> {
    from_node(tree).map_err(|e| config_err(file, e.render()))
}

/// Deserialize a typed value from a tree (root key path).
pub(crate) fn from_node<T: DeserializeOwned>(tree: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node: tree,
        path: &Path::Root,
    })
    .map_err(|e| e.at(&Path::Root, tree))
}

/// Deserialize a typed value from the node found under top-level `key` (errors name
/// `key.<path>`).
pub(crate) fn from_node_at<T: DeserializeOwned>(node: &Node, key: &str) -> Result<T, DeError> {
    let path = Path::Key(&Path::Root, key);
    T::deserialize(NodeDe { node, path: &path }).map_err(|e| e.at(&path, node))
}

fn config_err(file: &str, msg: String) -> Error {
    Error::Config {
        file: file.to_string(),
        msg,
    }
}

// ------------------------------------------------------------------------------------------
// The located tree
// ------------------------------------------------------------------------------------------

/// A YAML node with its position (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) line: u64,
    pub(crate) col: u64,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique (duplicates were resolved while parsing).
    Map(Vec<(String, Node)>),
}

thread_local! {
    /// Duplicate keys met while building the current tree (PyYAML keeps the last value).
    static DUPLICATES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Hand-over slot for [`NodeDe::deserialize_newtype_struct`] with [`NODE_MARKER`].
    static STASH: RefCell<Option<Node>> = const { RefCell::new(None) };
    /// Nesting depth of the tree being built (serde-saphyr's own depth budget does not see
    /// through `Spanned`, so the tree builder enforces it).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Deepest accepted nesting of sequences and mappings. Configs nest at most ~6 levels; a low
/// cap keeps the recursive passes far from the stack limit (a debug build overflows a 2 MB
/// thread stack at ~40 levels).
pub const MAX_CONFIG_DEPTH: usize = 20;

/// Increments [`DEPTH`] while alive.
struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        let d = DEPTH.with(|d| {
            let v = d.get() + 1;
            d.set(v);
            v
        });
        let guard = DepthGuard;
        if d > MAX_CONFIG_DEPTH {
            return Err(E::custom(format!(
                "nesting deeper than {MAX_CONFIG_DEPTH} levels"
            )));
        }
        Ok(guard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Name of the newtype struct through which a tree-aware type asks the tree deserializer for
/// the raw located node (see [`RawNode`]).
const NODE_MARKER: &str = "__ngmixer_config_raw_node";

impl Node {
    pub(crate) fn new(kind: NodeKind, line: u64, col: u64) -> Self {
        Node { kind, line, col }
    }

    /// A located "here" string for messages (`line 3, column 5`).
    pub(crate) fn loc(&self) -> String {
        if self.line == 0 {
            String::new()
        } else {
            format!("line {}, column {}", self.line, self.col)
        }
    }

    /// The mapping entries, if this is a mapping.
    pub(crate) fn as_map(&self) -> Option<&Vec<(String, Node)>> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping entries, mutably, if this is a mapping.
    pub(crate) fn as_map_mut(&mut self) -> Option<&mut Vec<(String, Node)>> {
        match &mut self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Look up a key of a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()
            .and_then(|m| m.iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    /// Look up a key of a mapping, mutably.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()
            .and_then(|m| m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    /// Remove a key from a mapping, returning its value.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Node> {
        let m = self.as_map_mut()?;
        let i = m.iter().position(|(k, _)| k == key)?;
        Some(m.remove(i).1)
    }

    /// Insert (or replace) a key of a mapping; no-op when this is not a mapping.
    pub(crate) fn insert(&mut self, key: &str, value: Node) {
        if let Some(m) = self.as_map_mut() {
            if let Some(slot) = m.iter_mut().find(|(k, _)| k == key) {
                slot.1 = value;
            } else {
                m.push((key.to_string(), value));
            }
        }
    }

    /// The string value, if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean value (YAML 1.1 spellings accepted), if this is a boolean.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            NodeKind::Bool(b) => Some(*b),
            NodeKind::Str(s) => yaml11_bool(s),
            _ => None,
        }
    }

    /// Short name of the node type, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Int(_) | NodeKind::UInt(_) => "integer",
            NodeKind::Float(_) => "float",
            NodeKind::Str(_) => "string",
            NodeKind::Seq(_) => "sequence",
            NodeKind::Map(_) => "mapping",
        }
    }

    /// Take the duplicate-key reports collected while parsing on this thread.
    pub(crate) fn take_duplicates() -> Vec<String> {
        DUPLICATES.with(|d| std::mem::take(&mut *d.borrow_mut()))
    }
}

/// PyYAML (YAML 1.1) boolean spellings.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "y" | "on" | "true" => Some(true),
        "no" | "n" | "off" | "false" => Some(false),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sp = serde_saphyr::Spanned::<KindOnly>::deserialize(d)?;
        Ok(Node {
            kind: sp.value.0,
            line: sp.referenced.line(),
            col: sp.referenced.column(),
        })
    }
}

/// The unlocated part of a node, deserialized through `deserialize_any`.
struct KindOnly(NodeKind);

impl<'de> Deserialize<'de> for KindOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor { located: true })
            .map(KindOnly)
    }
}

/// Builds a [`NodeKind`]; `located` children are read through `Spanned` (serde-saphyr only).
#[derive(Clone, Copy)]
struct KindVisitor {
    located: bool,
}

/// A node read without location information (works with any deserializer).
struct PlainNode(Node);

impl<'de> Deserialize<'de> for PlainNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = d.deserialize_any(KindVisitor { located: false })?;
        Ok(PlainNode(Node::new(k, 0, 0)))
    }
}

impl<'de> Visitor<'de> for KindVisitor {
    type Value = NodeKind;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => NodeKind::Int(i),
            Err(_) => NodeKind::UInt(v),
        })
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        if let Ok(i) = i64::try_from(v) {
            Ok(NodeKind::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(NodeKind::UInt(u))
        } else {
            Err(E::custom(format!("integer {v} is out of range")))
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(format!("integer {v} is out of range"))),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<NodeKind, E> {
        match std::str::from_utf8(v) {
            Ok(s) => Ok(NodeKind::Str(s.to_string())),
            Err(_) => Err(E::custom("binary values are not supported in configs")),
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let _depth = DepthGuard::enter::<A::Error>()?;
        let mut out = Vec::new();
        loop {
            let next = if self.located {
                seq.next_element::<Node>()?
            } else {
                seq.next_element::<PlainNode>()?.map(|p| p.0)
            };
            match next {
                Some(n) => out.push(n),
                None => break,
            }
        }
        Ok(NodeKind::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let _depth = DepthGuard::enter::<A::Error>()?;
        let mut out: Vec<(String, Node)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some(KeyText(k)) = map.next_key::<KeyText>()? {
            let v = if self.located {
                map.next_value::<Node>()?
            } else {
                map.next_value::<PlainNode>()?.0
            };
            if let Some(slot) = index.get(&k).and_then(|&i| out.get_mut(i)) {
                let msg = if v.line > 0 {
                    format!(
                        "duplicate key `{k}` at line {} (earlier at line {}): the last value is used, as PyYAML does",
                        v.line, slot.1.line
                    )
                } else {
                    format!("duplicate key `{k}`: the last value is used, as PyYAML does")
                };
                DUPLICATES.with(|d| d.borrow_mut().push(msg));
                slot.1 = v;
            } else {
                index.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
        Ok(NodeKind::Map(out))
    }
}

/// A mapping key rendered as text (scalar keys only).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = d.deserialize_any(KindVisitor { located: false })?;
        let s = match k {
            NodeKind::Str(s) => s,
            NodeKind::Int(i) => i.to_string(),
            NodeKind::UInt(u) => u.to_string(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Null => "null".to_string(),
            NodeKind::Seq(_) | NodeKind::Map(_) => {
                return Err(de::Error::custom("mapping keys must be scalars"));
            }
        };
        Ok(KeyText(s))
    }
}

/// Wrapper that obtains the raw located tree of a value when deserialized through
/// [`from_yaml_str`] (and a location-free tree from any other deserializer). Used by types that
/// need to rewrite keys before their typed pass (the Y1 compatibility layer).
pub(crate) struct RawNode(pub(crate) Node);

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(NODE_MARKER, RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML mapping")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        // Our tree deserializer put the node in the stash just before calling us.
        match STASH.with(|s| s.borrow_mut().take()) {
            Some(n) => Ok(RawNode(n)),
            None => Ok(RawNode(Node::new(NodeKind::Null, 0, 0))),
        }
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        // Another deserializer: build a tree without locations (and without stale
        // duplicate-key reports from an earlier parse on this thread).
        DUPLICATES.with(|d| d.borrow_mut().clear());
        let k = d.deserialize_any(KindVisitor { located: false })?;
        Ok(RawNode(Node::new(k, 0, 0)))
    }
}

// ------------------------------------------------------------------------------------------
// Errors with key paths
// ------------------------------------------------------------------------------------------

/// Key path of the node being deserialized (a linked list on the stack).
#[derive(Debug)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(p, k) => {
                if matches!(p, Path::Root) {
                    write!(f, "{k}")
                } else {
                    write!(f, "{p}.{k}")
                }
            }
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// Deserialization error of the tree deserializer.
#[derive(Debug, Clone)]
pub(crate) struct DeError {
    /// Key path, once known (innermost wins).
    path: Option<String>,
    /// Location of that key's node.
    loc: String,
    msg: String,
}

impl DeError {
    /// Attach the path and location of `node` if none is attached yet.
    fn at(mut self, path: &Path<'_>, node: &Node) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
            self.loc = node.loc();
        }
        self
    }

    /// The message with the key path and location in front.
    pub(crate) fn render(&self) -> String {
        let msg = improve_message(&self.msg);
        let root = self.path.as_deref().is_none_or(str::is_empty);
        if root && (msg.starts_with("key `") || msg.starts_with("top level")) {
            // Already rendered by an inner pass (a type that reads its own tree).
            return msg;
        }
        match (&self.path, self.loc.is_empty()) {
            (Some(p), _) if !p.is_empty() && !self.loc.is_empty() => {
                format!("key `{p}` ({}): {msg}", self.loc)
            }
            (Some(p), _) if !p.is_empty() => format!("key `{p}`: {msg}"),
            (_, false) => format!("top level ({}): {msg}", self.loc),
            _ => format!("top level: {msg}"),
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: None,
            loc: String::new(),
            msg: msg.to_string(),
        }
    }
}

/// Shorten serde's "unknown field `x`, expected one of `a`, `b`, ..." lists and add a
/// "did you mean" hint.
fn improve_message(msg: &str) -> String {
    for what in ["unknown field `", "unknown variant `"] {
        let Some(rest) = msg.strip_prefix(what) else {
            continue;
        };
        let Some(end) = rest.find('`') else {
            return msg.to_string();
        };
        let name = &rest[..end];
        let tail = &rest[end + 1..];
        let expected: Vec<&str> = tail
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let kind = if what.starts_with("unknown field") {
            "key"
        } else {
            "value"
        };
        let mut out = format!("unknown {kind} `{name}`");
        if let Some(best) = closest(name, &expected) {
            out.push_str(&format!(" (did you mean `{best}`?)"));
        }
        if expected.is_empty() {
            out.push_str(", no keys are allowed here");
        } else if expected.len() <= 12 {
            let list: Vec<String> = expected.iter().map(|s| format!("`{s}`")).collect();
            out.push_str(&format!(", expected one of {}", list.join(", ")));
        } else {
            out.push_str(&format!(
                ", not one of the {} accepted {kind}s here (see the ngmixer::config docs)",
                expected.len()
            ));
        }
        return out;
    }
    msg.to_string()
}

/// The candidate closest to `name` by edit distance, if it is close enough.
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if name.chars().count() > 64 {
        return None;
    }
    let lname = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&lname, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (name.chars().count() / 3).max(1);
    (d <= limit && d > 0 || (d == 0 && c != name)).then_some(c)
}

/// Edit distance with adjacent transpositions (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for j in 0..=b.len() {
        d[j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

// ------------------------------------------------------------------------------------------
// The path-tracking tree deserializer
// ------------------------------------------------------------------------------------------

/// Deserializer over one located node.
struct NodeDe<'a, 'p> {
    node: &'a Node,
    path: &'p Path<'p>,
}

impl<'a, 'p> NodeDe<'a, 'p> {
    fn invalid<V: Visitor<'a>>(&self, visitor: &V) -> DeError {
        let unexp = match &self.node.kind {
            NodeKind::Null => de::Unexpected::Unit,
            NodeKind::Bool(b) => de::Unexpected::Bool(*b),
            NodeKind::Int(i) => de::Unexpected::Signed(*i),
            NodeKind::UInt(u) => de::Unexpected::Unsigned(*u),
            NodeKind::Float(f) => de::Unexpected::Float(*f),
            NodeKind::Str(s) => de::Unexpected::Str(s),
            NodeKind::Seq(_) => de::Unexpected::Seq,
            NodeKind::Map(_) => de::Unexpected::Map,
        };
        let msg = if matches!(self.node.kind, NodeKind::Null) {
            format!(
                "invalid type: null (empty value), expected {}",
                Expecting(visitor)
            )
        } else {
            format!("invalid type: {unexp}, expected {}", Expecting(visitor))
        };
        de::Error::custom(msg)
    }
}

/// Display adapter for a visitor's `expecting`.
struct Expecting<'v, V>(&'v V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

macro_rules! int_method {
    ($name:ident) => {
        fn $name<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            match &self.node.kind {
                NodeKind::Int(i) => visitor.visit_i64(*i),
                NodeKind::UInt(u) => visitor.visit_u64(*u),
                _ => Err(self.invalid(&visitor)),
            }
        }
    };
}

macro_rules! float_method {
    ($name:ident) => {
        fn $name<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            match &self.node.kind {
                NodeKind::Float(f) => visitor.visit_f64(*f),
                NodeKind::Int(i) => visitor.visit_f64(*i as f64),
                NodeKind::UInt(u) => visitor.visit_f64(*u as f64),
                _ => Err(self.invalid(&visitor)),
            }
        }
    };
}

impl<'a, 'p> Deserializer<'a> for NodeDe<'a, 'p> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::UInt(u) => visitor.visit_u64(*u),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_borrowed_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items,
                index: 0,
                path: self.path,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                entries,
                index: 0,
                path: self.path,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.as_bool() {
            Some(b) => visitor.visit_bool(b),
            None => Err(self.invalid(&visitor)),
        }
    }

    int_method!(deserialize_i8);
    int_method!(deserialize_i16);
    int_method!(deserialize_i32);
    int_method!(deserialize_i64);
    int_method!(deserialize_i128);
    int_method!(deserialize_u8);
    int_method!(deserialize_u16);
    int_method!(deserialize_u32);
    int_method!(deserialize_u64);
    int_method!(deserialize_u128);
    float_method!(deserialize_f32);
    float_method!(deserialize_f64);

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Str(s) => visitor.visit_borrowed_str(s),
            NodeKind::Int(i) => visitor.visit_string(i.to_string()),
            NodeKind::UInt(u) => visitor.visit_string(u.to_string()),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == NODE_MARKER {
            STASH.with(|s| *s.borrow_mut() = Some(self.node.clone()));
            let r = visitor.visit_unit();
            STASH.with(|s| s.borrow_mut().take());
            return r;
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items,
                index: 0,
                path: self.path,
            }),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                entries,
                index: 0,
                path: self.path,
            }),
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                visitor.visit_enum(EnumDe {
                    variant: k,
                    node: v,
                    path: self.path,
                })
            }
            _ => Err(self.invalid(&visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a, 'p> {
    items: &'a [Node],
    index: usize,
    path: &'p Path<'p>,
}

impl<'a> SeqAccess<'a> for SeqDe<'a, '_> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let path = Path::Index(self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path: &path })
            .map(Some)
            .map_err(|e| e.at(&path, node))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len().saturating_sub(self.index))
    }
}

struct MapDe<'a, 'p> {
    entries: &'a [(String, Node)],
    index: usize,
    path: &'p Path<'p>,
}

impl<'a> MapAccess<'a> for MapDe<'a, '_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        let path = Path::Key(self.path, key);
        let kd: de::value::BorrowedStrDeserializer<'a, DeError> =
            de::value::BorrowedStrDeserializer::new(key);
        seed.deserialize(kd)
            .map(Some)
            .map_err(|e| e.at(&path, node))
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.entries.get(self.index) else {
            return Err(de::Error::custom(
                "value requested after the end of a mapping",
            ));
        };
        self.index += 1;
        let path = Path::Key(self.path, key);
        seed.deserialize(NodeDe { node, path: &path })
            .map_err(|e| e.at(&path, node))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len().saturating_sub(self.index))
    }
}

struct EnumDe<'a, 'p> {
    variant: &'a str,
    node: &'a Node,
    path: &'p Path<'p>,
}

impl<'a, 'p> EnumAccess<'a> for EnumDe<'a, 'p> {
    type Error = DeError;
    type Variant = EnumDe<'a, 'p>;
    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let kd: de::value::BorrowedStrDeserializer<'a, DeError> =
            de::value::BorrowedStrDeserializer::new(self.variant);
        let v = seed.deserialize(kd)?;
        Ok((v, self))
    }
}

impl<'a> VariantAccess<'a> for EnumDe<'a, '_> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.node.kind {
            NodeKind::Null => Ok(()),
            _ => Err(de::Error::custom(format!(
                "`{}` takes no value",
                self.variant
            ))),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        let path = Path::Key(self.path, self.variant);
        seed.deserialize(NodeDe {
            node: self.node,
            path: &path,
        })
        .map_err(|e| e.at(&path, self.node))
    }
    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let path = Path::Key(self.path, self.variant);
        NodeDe {
            node: self.node,
            path: &path,
        }
        .deserialize_seq(visitor)
        .map_err(|e| e.at(&path, self.node))
    }
    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = Path::Key(self.path, self.variant);
        NodeDe {
            node: self.node,
            path: &path,
        }
        .deserialize_map(visitor)
        .map_err(|e| e.at(&path, self.node))
    }
}

// ------------------------------------------------------------------------------------------
// Public generic value
// ------------------------------------------------------------------------------------------

/// A generic YAML value, for the open-ended parts of a config (extra metacal options,
/// importance-sampling parameters, legacy keys kept for the record).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping (keys rendered as text, sorted).
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The value as a float (integers are converted).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::String(s) => yaml11_bool(s),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&Node> for Value {
    fn from(n: &Node) -> Self {
        match &n.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::Int(*i),
            NodeKind::UInt(u) => Value::UInt(*u),
            NodeKind::Float(f) => Value::Float(*f),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(v) => Value::Seq(v.iter().map(Value::from).collect()),
            NodeKind::Map(m) => {
                Value::Map(m.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = d.deserialize_any(KindVisitor { located: false })?;
        Ok(Value::from(&Node::new(k, 0, 0)))
    }
}
