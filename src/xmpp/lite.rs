//! A flat, borrowed view of one top-level unit: what the Info column,
//! `--stats` and IQ pairing read (names, namespaces, attributes, the text of
//! a few children), without building an owned [`Element`] tree.
//!
//! Two ways in, one way out:
//!
//! * [`parse`] reads a unit straight from its bytes when it is plain XML —
//!   the usual case on the wire — borrowing names, attribute values and text
//!   from the unit; it declines (returns `None`) on anything it does not
//!   understand completely (comments, CDATA, processing instructions, unusual
//!   names or tag layouts, unknown references, invalid UTF-8, any
//!   well-formedness error). The caller then parses with quick-xml
//!   ([`super::element::parse`]), which decides what the unit is.
//! * [`Tree::from_element`] views an [`Element`] parsed by quick-xml the same
//!   way, so the summary code ([`super::info::describe_el`]) is written once.
//!
//! Whatever [`parse`] accepts, quick-xml accepts too and reads the same way
//! (same names, namespaces, attribute values after normalisation, same text
//! with the predefined entities and character references resolved and any
//! other reference kept as written); `tests` check that on tricky units and on
//! random mutations of real ones.
//!
//! Memory is linear in the unit (bounded by the framer's
//! `--max-element-bytes`); no recursion, so nesting depth costs no stack.

use std::borrow::Cow;
use std::cell::RefCell;

use memchr::memchr;
use quick_xml::XmlVersion;
use quick_xml::events::BytesRef;
use quick_xml::events::attributes::Attribute;
use quick_xml::name::QName;

use super::element::{Element, Scope};
use super::framer::{Resume, find2};

/// "No node" / "no piece" in the index links.
const NONE: u32 = u32::MAX;

/// The namespace bound to the `xml` prefix (Namespaces in XML §3).
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

#[derive(Debug, Clone)]
struct Node<'a> {
    /// Qualified name as written.
    name: &'a str,
    /// Its local part (after the last `:`).
    local: &'a str,
    /// Resolved namespace URI ("" when none).
    ns: &'a str,
    attrs_start: u32,
    attrs_end: u32,
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    first_text: u32,
    last_text: u32,
}

/// One parsed unit, flat: nodes in document order (the root first).
///
/// Its buffers come from a per-thread spare set and go back to it when the
/// tree is dropped (see [`Spare`]): a unit costs no allocation once the
/// buffers have grown to the usual size.
#[derive(Debug, Clone, Default)]
pub struct Tree<'a> {
    nodes: Vec<Node<'a>>,
    attrs: Vec<(&'a str, Cow<'a, str>)>,
    /// Pieces of character data, each with the next piece of the same node.
    texts: Vec<(Cow<'a, str>, u32)>,
    /// [`parse_str`]'s working storage (empty outside it): the open
    /// elements and the prefixes declared inside the unit.
    stack: Vec<Open<'a>>,
    prefixes: Vec<(&'a str, &'a str)>,
}

/// Buffers of dropped trees, kept for the next one on this thread.
/// Lifetimes are erased by emptying a buffer and collecting it into the
/// same element type with `'static` ([`recycle`]): std reuses the
/// allocation in place (same size and alignment), nothing is kept but
/// capacity.
struct Spare {
    nodes: Vec<Node<'static>>,
    attrs: Vec<(&'static str, Cow<'static, str>)>,
    texts: Vec<(Cow<'static, str>, u32)>,
    stack: Vec<Open<'static>>,
    prefixes: Vec<(&'static str, &'static str)>,
}

thread_local! {
    static SPARE: RefCell<Spare> = const {
        RefCell::new(Spare {
            nodes: Vec::new(),
            attrs: Vec::new(),
            texts: Vec::new(),
            stack: Vec::new(),
            prefixes: Vec::new(),
        })
    };
}

/// Buffers larger than this many elements are freed rather than kept (a
/// huge unit must not pin its memory on the thread).
const SPARE_KEEP: usize = 1024;

/// `v` emptied, as a buffer of `U` (the same type up to lifetimes) with
/// the same allocation.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    if v.capacity() > SPARE_KEEP {
        return Vec::new();
    }
    v.into_iter().filter_map(|_| None).collect()
}

/// Put back the spare buffer `slot` only if the one there is smaller.
fn keep<T>(slot: &mut Vec<T>, v: Vec<T>) {
    if v.capacity() > slot.capacity() {
        *slot = v;
    }
}

impl Drop for Tree<'_> {
    fn drop(&mut self) {
        let nodes = recycle(std::mem::take(&mut self.nodes));
        let attrs = recycle(std::mem::take(&mut self.attrs));
        let texts = recycle(std::mem::take(&mut self.texts));
        let stack = recycle(std::mem::take(&mut self.stack));
        let prefixes = recycle(std::mem::take(&mut self.prefixes));
        // At thread exit the slot may be gone, or (never in practice)
        // borrowed: then the buffers are simply freed.
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                keep(&mut s.nodes, nodes);
                keep(&mut s.attrs, attrs);
                keep(&mut s.texts, texts);
                keep(&mut s.stack, stack);
                keep(&mut s.prefixes, prefixes);
            }
        });
    }
}

/// An element of a [`Tree`].
#[derive(Debug, Clone, Copy)]
pub struct El<'t, 'a> {
    tree: &'t Tree<'a>,
    idx: u32,
}

impl<'a> Tree<'a> {
    /// An empty tree on this thread's spare buffers (new ones the first
    /// time).
    fn from_spare() -> Self {
        SPARE
            .try_with(|s| {
                s.try_borrow_mut().ok().map(|mut s| Self {
                    nodes: std::mem::take(&mut s.nodes),
                    attrs: std::mem::take(&mut s.attrs),
                    texts: std::mem::take(&mut s.texts),
                    stack: std::mem::take(&mut s.stack),
                    prefixes: std::mem::take(&mut s.prefixes),
                })
            })
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The root element. A tree always has one (both constructors make it).
    #[must_use]
    pub fn root(&self) -> El<'_, 'a> {
        El { tree: self, idx: 0 }
    }

    fn len32(n: usize) -> u32 {
        u32::try_from(n).unwrap_or(NONE)
    }

    /// Append an element under `parent` (NONE for the root). Inlined: it
    /// is called once per element, and the call costs a third of it.
    #[inline(always)]
    fn add(
        &mut self,
        parent: u32,
        name: &'a str,
        local: &'a str,
        ns: &'a str,
        attrs_start: usize,
    ) -> u32 {
        let idx = Self::len32(self.nodes.len());
        self.nodes.push(Node {
            name,
            local,
            ns,
            attrs_start: Self::len32(attrs_start),
            attrs_end: Self::len32(self.attrs.len()),
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            first_text: NONE,
            last_text: NONE,
        });
        if let Some(p) = self.nodes.get(parent as usize).map(|p| p.last_child) {
            if let Some(prev) = self.nodes.get_mut(p as usize) {
                prev.next_sibling = idx;
            }
            if let Some(p) = self.nodes.get_mut(parent as usize) {
                if p.first_child == NONE {
                    p.first_child = idx;
                }
                p.last_child = idx;
            }
        }
        idx
    }

    /// Append a piece of character data to `node`'s. Inlined, as
    /// [`Tree::add`]: it is called for every piece, usually a few bytes.
    #[inline(always)]
    fn add_text(&mut self, node: u32, piece: Cow<'a, str>) {
        if piece.is_empty() {
            return;
        }
        let idx = Self::len32(self.texts.len());
        self.texts.push((piece, NONE));
        let Some(n) = self.nodes.get_mut(node as usize) else {
            return;
        };
        let last = n.last_text;
        if n.first_text == NONE {
            n.first_text = idx;
        }
        n.last_text = idx;
        if let Some(t) = self.texts.get_mut(last as usize) {
            t.1 = idx;
        }
    }

    /// View an element parsed by quick-xml (iteratively: any depth).
    #[must_use]
    pub fn from_element(el: &'a Element) -> Self {
        let mut t = Self::default();
        // (element, its node, index of the next child to add)
        let mut stack: Vec<(&'a Element, u32, usize)> = Vec::new();
        let root = t.add_element(el, NONE);
        stack.push((el, root, 0));
        while let Some((e, node, next)) = stack.last_mut() {
            let (e, node) = (*e, *node);
            match e.children.get(*next) {
                Some(c) => {
                    *next += 1;
                    let idx = t.add_element(c, node);
                    stack.push((c, idx, 0));
                }
                None => {
                    stack.pop();
                }
            }
        }
        t
    }

    fn add_element(&mut self, el: &'a Element, parent: u32) -> u32 {
        let start = self.attrs.len();
        self.attrs.extend(
            el.attrs
                .iter()
                .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str()))),
        );
        let idx = self.add(parent, &el.name, el.local(), &el.ns, start);
        self.add_text(idx, Cow::Borrowed(&el.text));
        idx
    }
}

impl<'t, 'a> El<'t, 'a> {
    fn node(self) -> Option<&'t Node<'a>> {
        self.tree.nodes.get(self.idx as usize)
    }

    /// Qualified name as written.
    #[must_use]
    pub fn name(self) -> &'a str {
        self.node().map_or("", |n| n.name)
    }

    /// Local part of the name.
    #[must_use]
    pub fn local(self) -> &'a str {
        self.node().map_or("", |n| n.local)
    }

    /// Resolved namespace ("" when none).
    #[must_use]
    pub fn ns(self) -> &'a str {
        self.node().map_or("", |n| n.ns)
    }

    /// Attribute by qualified name (the first one when repeated).
    #[must_use]
    pub fn attr(self, name: &str) -> Option<&'t str> {
        let n = self.node()?;
        self.tree
            .attrs
            .get(n.attrs_start as usize..n.attrs_end as usize)?
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| &**v)
    }

    /// Child elements in order.
    pub fn children(self) -> impl Iterator<Item = El<'t, 'a>> + use<'t, 'a> {
        let tree = self.tree;
        let mut next = self.node().map_or(NONE, |n| n.first_child);
        std::iter::from_fn(move || {
            let n = tree.nodes.get(next as usize)?;
            let el = El { tree, idx: next };
            next = n.next_sibling;
            Some(el)
        })
    }

    /// First child with this local name (any namespace).
    #[must_use]
    pub fn child(self, local: &str) -> Option<El<'t, 'a>> {
        self.children().find(|c| c.local() == local)
    }

    /// The pieces of [`El::text`], in order, without joining them.
    pub fn text_pieces(self) -> impl Iterator<Item = &'t str> + use<'t, 'a> {
        let tree = self.tree;
        let mut next = self.node().map_or(NONE, |n| n.first_text);
        std::iter::from_fn(move || {
            let (piece, after) = tree.texts.get(next as usize)?;
            next = *after;
            Some(&**piece)
        })
    }

    /// `self.text().len()`, without joining the pieces.
    #[must_use]
    pub fn text_len(self) -> usize {
        self.text_pieces().map(str::len).sum()
    }

    /// Character data directly inside this element, references resolved.
    #[must_use]
    pub fn text(self) -> Cow<'t, str> {
        let tree = self.tree;
        let mut next = self.node().map_or(NONE, |n| n.first_text);
        let Some((first, after)) = tree.texts.get(next as usize) else {
            return Cow::Borrowed("");
        };
        if *after == NONE {
            return Cow::Borrowed(first);
        }
        let mut s = String::new();
        while let Some((piece, after)) = tree.texts.get(next as usize) {
            s.push_str(piece);
            next = *after;
        }
        Cow::Owned(s)
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// [`NAME_CHAR`] bit: a name character read here.
const NAME: u8 = 1;
/// [`NAME_CHAR`] bit: a character that may start a name read here.
const NAME_START: u8 = 2;
/// [`NAME_CHAR`] bit: `:` (a prefixed name).
const COLON: u8 = 4;

/// The names read here, by byte (a table: this is the inner loop of a
/// tag): ASCII letters, digits, `_`, `-`, `.` and `:`, with a letter or
/// `_` first (anything else goes to quick-xml).
static NAME_CHAR: [u8; 256] = {
    let mut t = [0; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') {
            t[c] = NAME;
        }
        if b.is_ascii_alphabetic() || b == b'_' {
            t[c] |= NAME_START;
        }
        if b == b':' {
            t[c] |= COLON;
        }
        c += 1;
    }
    t
};

fn is_name_start(b: u8) -> bool {
    NAME_CHAR[usize::from(b)] & NAME_START != 0
}

/// Where the name starting at `from` ends (the first byte that is not a
/// name character, or the end), and whether it holds a `:`. Four bytes
/// per step while all four are name characters (one test for the four:
/// names are short, but most are longer than three), then one at a time
/// to the end.
fn name_end(b: &[u8], from: usize) -> (usize, bool) {
    let mut k = from;
    let mut seen = 0;
    if let Some(rest) = b.get(from..) {
        for w in rest.chunks_exact(4) {
            if let &[c0, c1, c2, c3] = w {
                let (t0, t1, t2, t3) = (
                    NAME_CHAR[usize::from(c0)],
                    NAME_CHAR[usize::from(c1)],
                    NAME_CHAR[usize::from(c2)],
                    NAME_CHAR[usize::from(c3)],
                );
                if t0 & t1 & t2 & t3 & NAME != 0 {
                    seen |= t0 | t1 | t2 | t3;
                    k += 4;
                    continue;
                }
            }
            break;
        }
    }
    while let Some(&c) = b.get(k) {
        let t = NAME_CHAR[usize::from(c)];
        if t & NAME == 0 {
            break;
        }
        seen |= t;
        k += 1;
    }
    (k, seen & COLON != 0)
}

fn predefined(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

/// Levels whose attributes and character data [`parse`] keeps (the root is
/// level 1): the stanza and its children (`body`, `show`, `status`, …).
pub const FULL_LEVELS: usize = 2;
/// Levels whose elements [`parse`] keeps at all, by name and namespace: the
/// grandchildren too (roster `item`s, error conditions). Deeper elements
/// are checked for well-formedness, not kept.
pub const NAMED_LEVELS: usize = 3;

/// An element open while parsing.
#[derive(Debug, Clone)]
struct Open<'a> {
    /// Its node (NONE below [`NAMED_LEVELS`]).
    node: u32,
    name: &'a [u8],
    /// Default namespace inside it.
    default_ns: &'a str,
    /// `prefixes.len()` before its declarations.
    prefixes_len: usize,
}

/// Read one complete unit (a top-level element cut out by the framer) in
/// `scope`, or `None` when it is not plain enough to be read here (then
/// quick-xml decides). The unit must be UTF-8 (checked once, as a whole);
/// bytes after the element are not looked at, as quick-xml does.
#[must_use]
pub fn parse<'a>(b: &'a [u8], scope: &'a Scope) -> Option<Tree<'a>> {
    let s = simdutf8::basic::from_utf8(b).ok()?;
    parse_str(s, scope, usize::MAX, &mut None).map(|(t, _)| t)
}

/// The longest valid UTF-8 prefix of `b` (all of it, usually).
///
/// Validating every delivery and every unit the framer cuts is a
/// measurable part of reading a capture: `simdutf8` (SIMD, chosen at run
/// time; the same answer) takes about a third of the instructions of
/// `std::str::from_utf8` on it. Only invalid input, which is rare, is
/// looked at again to find where the valid part ends.
#[must_use]
pub fn utf8_prefix(b: &[u8]) -> &str {
    if let Ok(s) = simdutf8::basic::from_utf8(b) {
        return s;
    }
    let valid = simdutf8::compat::from_utf8(b).map_or_else(|e| e.valid_up_to(), str::len);
    b.get(..valid)
        .and_then(|p| simdutf8::basic::from_utf8(p).ok())
        .unwrap_or_default()
}

/// [`utf8_prefix`] for input known to hold invalid UTF-8 somewhere: reads
/// only up to the first invalid sequence (`compat` stops at the block where
/// it is), so that stepping past invalid bytes one unit at a time costs the
/// bytes stepped over, not the rest of the input each time.
#[must_use]
pub fn utf8_prefix_to_error(b: &[u8]) -> &str {
    match simdutf8::compat::from_utf8(b) {
        Ok(s) => s,
        Err(e) => b
            .get(..e.valid_up_to())
            .and_then(|p| simdutf8::basic::from_utf8(p).ok())
            .unwrap_or_default(),
    }
}

/// What [`frame`] made of the start of its input.
#[derive(Debug)]
pub enum Framed<'a> {
    /// A whole element: its tree and length.
    Whole(Tree<'a>, usize),
    /// Plain as far as it goes, but the input ends inside the element (a
    /// unit split across TCP segments): where the framer's scanner would
    /// be after reading all of it, for [`super::framer::Framer::resume`]:
    /// the open elements it would count, and the state.
    Partial { depth: usize, at: Resume },
    /// Anything else: the framer cuts it.
    Declined,
}

/// Frame and read the element at the start of `s` (in-order stream bytes
/// at the top level, already checked for UTF-8): the tree and the element's
/// length; or, when `s` ends inside a plain element no longer than
/// `max_bytes`, where the framer would be after it; or [`Framed::Declined`]
/// when it is not plain, deeper than `max_depth` open elements, longer than
/// `max_bytes`, or a stream header (then the framer cuts it). Whatever this
/// frames, the framer would cut at the same place ([`super::framer`] counts
/// depth and skips quoted values the same way on plain XML).
#[must_use]
pub fn frame<'a>(s: &'a str, scope: &'a Scope, max_bytes: usize, max_depth: usize) -> Framed<'a> {
    let Some(window) = s.get(..s.len().min(max_bytes)) else {
        return Framed::Declined;
    };
    let mut end = None;
    match parse_str(window, scope, max_depth, &mut end) {
        Some((t, len)) => Framed::Whole(t, len),
        // Out of input only if the window is all there is (else the
        // element is too large: the framer's).
        None => match end {
            Some((depth, at)) if window.len() == s.len() => Framed::Partial { depth, at },
            _ => Framed::Declined,
        },
    }
}

/// The input ended at `depth` open elements, in state `at`: noted in `end`
/// (see [`Framed::Partial`]).
fn ran_out<T>(end: &mut Option<(usize, Resume)>, depth: usize, at: Resume) -> Option<T> {
    *end = Some((depth, at));
    None
}

/// The reader behind [`parse`] and [`frame`]: the tree and the length of
/// the element at the start of `s`. When the input ends inside an element
/// whose bytes so far are plain, `end` says where (and `None` is returned);
/// every other `None` leaves `end` alone.
fn parse_str<'a>(
    s: &'a str,
    scope: &'a Scope,
    max_depth: usize,
    end: &mut Option<(usize, Resume)>,
) -> Option<(Tree<'a>, usize)> {
    let b = s.as_bytes();
    let mut t = Tree::from_spare();
    // `t.stack`: the open elements; `t.prefixes`: prefixes declared inside
    // the unit (those of the scope come after). Both are empty again when
    // the root closes.
    let lookup = |prefixes: &[(&'a str, &'a str)], p: &str| -> Option<&'a str> {
        if p == "xml" {
            return Some(NS_XML);
        }
        prefixes
            .iter()
            .rev()
            .find(|(k, _)| *k == p)
            .map(|(_, v)| *v)
            .or_else(|| {
                scope
                    .prefixes
                    .iter()
                    .rev()
                    .find(|(k, _)| k == p)
                    .map(|(_, v)| &**v)
            })
    };
    // The innermost open element's node and default namespace (those of
    // `t.stack`'s top, kept at hand: every tag needs them).
    let mut cur_node = NONE;
    let mut cur_ns: &'a str = &scope.default_ns;
    let mut i = 0;
    loop {
        // At markup: b[i] == '<'.
        if b.get(i) != Some(&b'<') {
            return None;
        }
        match b.get(i + 1).copied() {
            Some(b'/') => {
                // The close tag must name the open element: its name, any
                // whitespace, `>` (the first `>` after `</`, as names and
                // whitespace hold none).
                let open = t.stack.pop()?;
                // The framer counts the element open until the `>`.
                let depth = t.stack.len() + 1;
                let ne = (i + 2).checked_add(open.name.len())?;
                let Some(name) = b.get(i + 2..ne) else {
                    // The input ends in the close tag: the framer looks
                    // for its `>` only.
                    return match memchr(b'>', b.get(i + 2..)?) {
                        None => ran_out(end, depth, Resume::CloseTag),
                        Some(_) => None,
                    };
                };
                if name != open.name {
                    return None;
                }
                let gt = ne + skip_ws(b.get(ne..)?);
                if b.get(gt) != Some(&b'>') {
                    return if gt == b.len() {
                        ran_out(end, depth, Resume::CloseTag)
                    } else {
                        None
                    };
                }
                t.prefixes.truncate(open.prefixes_len);
                (cur_node, cur_ns) = t
                    .stack
                    .last()
                    .map_or((NONE, &*scope.default_ns), |o| (o.node, o.default_ns));
                i = gt + 1;
                if t.stack.is_empty() {
                    // The root is closed: what follows is not ours.
                    return Some((t, i));
                }
            }
            Some(c) if is_name_start(c) => {
                let level = t.stack.len() + 1;
                // `b[i + 1]` starts the name (a letter or `_`, no `:`).
                let (ne, prefixed) = name_end(b, i + 2);
                let name_b = b.get(i + 1..ne)?;
                let attrs_start = t.attrs.len();
                let prefixes_len = t.prefixes.len();
                let mut own_default = None;
                let mut j = ne;
                // Out of input in the tag: the framer is in it, outside
                // quotes, the element not counted yet.
                let in_tag = t.stack.len();
                let empty = loop {
                    let ws = skip_ws(b.get(j..)?);
                    let k = j + ws;
                    let Some(c) = b.get(k).copied() else {
                        return ran_out(end, in_tag, Resume::StartTag);
                    };
                    match c {
                        b'>' => {
                            j = k + 1;
                            break false;
                        }
                        b'/' if b.get(k + 1) == Some(&b'>') => {
                            j = k + 2;
                            break true;
                        }
                        b'/' if k + 1 == b.len() => {
                            return ran_out(end, in_tag, Resume::StartTag);
                        }
                        c if is_name_start(c) && ws > 0 => {
                            let (ke, _) = name_end(b, k);
                            if b.get(ke) != Some(&b'=') {
                                return if ke == b.len() {
                                    ran_out(end, in_tag, Resume::StartTag)
                                } else {
                                    None
                                };
                            }
                            let Some(&q) = b.get(ke + 1) else {
                                return ran_out(end, in_tag, Resume::StartTag);
                            };
                            if q != b'\'' && q != b'"' {
                                return None;
                            }
                            let vs = ke + 2;
                            let Some((ve, special)) = value_end(b, vs, q) else {
                                // In the value, the framer looks for the
                                // closing quote only.
                                return match memchr(q, b.get(vs..)?) {
                                    None => ran_out(end, in_tag, Resume::Quote(q)),
                                    Some(_) => None,
                                };
                            };
                            j = ve + 1;
                            if level > NAMED_LEVELS {
                                continue;
                            }
                            let key_b = b.get(k..ke)?;
                            let xmlns = key_b.starts_with(b"xmlns")
                                && matches!(key_b.get(5), None | Some(b':'));
                            if level > FULL_LEVELS && !xmlns {
                                continue;
                            }
                            let key = s.get(k..ke)?;
                            let raw = s.get(vs..ve)?;
                            let value = if special {
                                attr_value(key, raw)
                            } else {
                                Cow::Borrowed(raw)
                            };
                            if xmlns {
                                // A declaration must be usable as written.
                                let Cow::Borrowed(v) = value else {
                                    return None;
                                };
                                match key.strip_prefix("xmlns:") {
                                    Some(p) => t.prefixes.push((p, v)),
                                    None => own_default = Some(v),
                                }
                            }
                            if level <= FULL_LEVELS {
                                t.attrs.push((key, value));
                            }
                        }
                        _ => return None,
                    }
                };
                // The scope inside: the last `xmlns` of the tag wins.
                let default_ns = own_default.unwrap_or(cur_ns);
                let node = if level <= NAMED_LEVELS {
                    let name = s.get(i + 1..ne)?;
                    let colon = if prefixed {
                        name_b.iter().position(|&c| c == b':')
                    } else {
                        None
                    };
                    let (local, ns) = match colon {
                        Some(c) => (
                            name.rsplit(':').next().unwrap_or(name),
                            lookup(&t.prefixes, name.get(..c)?).unwrap_or(""),
                        ),
                        None => (name, default_ns),
                    };
                    if level == 1 && local == "stream" {
                        // A stream header (or its like): the framer's.
                        return None;
                    }
                    t.add(cur_node, name, local, ns, attrs_start)
                } else {
                    NONE
                };
                if empty {
                    t.prefixes.truncate(prefixes_len);
                    if t.stack.is_empty() {
                        return Some((t, j));
                    }
                } else {
                    if t.stack.len() >= max_depth {
                        return None;
                    }
                    t.stack.push(Open {
                        node,
                        name: name_b,
                        default_ns,
                        prefixes_len,
                    });
                    (cur_node, cur_ns) = (node, default_ns);
                }
                i = j;
            }
            None => return ran_out(end, t.stack.len(), Resume::Lt),
            _ => return None,
        }
        // Character data up to the next markup (usually none).
        if b.get(i) == Some(&b'<') {
            continue;
        }
        if t.stack.is_empty() {
            return None;
        }
        let (node, keep) = (cur_node, t.stack.len() <= FULL_LEVELS);
        loop {
            let rest = b.get(i..)?;
            let Some(p) = find2(b'<', b'&', rest) else {
                return ran_out(end, t.stack.len(), Resume::Content);
            };
            let p = i + p;
            if keep && p > i {
                t.add_text(node, Cow::Borrowed(s.get(i..p)?));
            }
            if b.get(p) == Some(&b'<') {
                i = p;
                break;
            }
            // A reference: up to `;`, before any `&` or `<` (else malformed).
            let after = b.get(p + 1..)?;
            let Some(q) = after.iter().position(|&c| matches!(c, b';' | b'&' | b'<')) else {
                return ran_out(end, t.stack.len(), Resume::Content);
            };
            let q = p + 1 + q;
            if b.get(q) != Some(&b';') {
                return None;
            }
            if keep {
                let name = s.get(p + 1..q)?;
                let piece = match BytesRef::new(name).resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    _ => match predefined(name) {
                        Some(c) => Cow::Borrowed(c),
                        // Anything else stays as written, never expanded.
                        None => Cow::Borrowed(s.get(p..=q)?),
                    },
                };
                t.add_text(node, piece);
            }
            i = q + 1;
        }
    }
}

/// How many whitespace bytes `b` starts with (usually none or one): one
/// test per byte, the first one included only once.
fn skip_ws(b: &[u8]) -> usize {
    let mut n = 0;
    while let Some(&c) = b.get(n) {
        if !is_ws(c) {
            break;
        }
        n += 1;
    }
    n
}

/// `0x01` in every byte of a word.
const LO: u64 = u64::from_ne_bytes([1; 8]);
/// `0x80` in every byte of a word.
const HI: u64 = LO << 7;

/// The high bit of each byte of `w` below `n` (`n` ≤ 0x80) is set in the
/// result, and possibly bits above a set one (borrows only run upwards):
/// whether any is set, and where the lowest one is, are exact.
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LO * u64::from(n)) & !w & HI
}

/// [`bytes_below`]`(w ^ c, 1)`: the bytes of `w` equal to `c`, lowest exact.
fn bytes_eq(w: u64, c: u8) -> u64 {
    bytes_below(w ^ (LO * u64::from(c)), 1)
}

/// The closing quote `q` of an attribute value starting at `vs`, and
/// whether the value needs normalising (`&`, tab, CR, LF); `None` at a `<`
/// (not allowed in a value, XML 1.0 §3.1: quick-xml decides) or at the end.
/// Eight bytes at a time while none of them can be a quote, `<`, `&` or a
/// control character below CR; one at a time over those.
fn value_end(b: &[u8], vs: usize, q: u8) -> Option<(usize, bool)> {
    let rest = b.get(vs..)?;
    let mut special = false;
    let mut k = 0;
    loop {
        if let Some(word) = rest.get(k..k + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            let w = u64::from_le_bytes(word);
            // A superset, cheaper to test: every byte below `(` (the
            // quotes, `&`, the control characters, but also space, `#`, …)
            // and `<`; the byte-at-a-time step below sorts them out.
            let hits = bytes_below(w, b'(') | bytes_eq(w, b'<');
            if hits == 0 {
                k += 8;
                continue;
            }
            // Little-endian: the lowest set bit is the first such byte.
            k += (hits.trailing_zeros() / 8) as usize;
        }
        let c = *rest.get(k)?;
        if c == q {
            return Some((vs + k, special));
        }
        match c {
            b'<' => return None,
            b'&' | b'\t' | b'\n' | b'\r' => special = true,
            _ => {}
        }
        k += 1;
    }
}

/// An attribute value as quick-xml gives it: normalised and unescaped
/// (XML 1.0 §3.3.3) when it needs to be, as written otherwise.
fn attr_value<'a>(key: &'a str, raw: &'a str) -> Cow<'a, str> {
    if !raw
        .bytes()
        .any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r'))
    {
        return Cow::Borrowed(raw);
    }
    let a = Attribute {
        key: QName(key),
        value: Cow::Borrowed(raw),
    };
    match a.normalized_value(XmlVersion::Implicit1_0) {
        Ok(v) => v,
        Err(_) => Cow::Borrowed(raw),
    }
}

/// Everything a tree says at the levels [`parse`] keeps, in one
/// comparable value (the tests and the `lite_vs_quickxml` fuzz target
/// compare the fast reading with quick-xml's by it).
#[doc(hidden)]
#[must_use]
pub fn dump(t: &Tree<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(t.root(), 1usize)];
    while let Some((e, level)) = stack.pop() {
        if level > NAMED_LEVELS {
            continue;
        }
        let Some(n) = e.node() else { continue };
        if level > FULL_LEVELS {
            out.push(format!("{level} {} {} {{{}}}", e.name(), e.local(), e.ns()));
            continue;
        }
        let attrs: Vec<String> = t
            .attrs
            .get(n.attrs_start as usize..n.attrs_end as usize)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        out.push(format!(
            "{level} {} {} {{{}}} [{}] {:?}",
            e.name(),
            e.local(),
            e.ns(),
            attrs.join(" "),
            e.text()
        ));
        let kids: Vec<_> = e.children().collect();
        for c in kids.into_iter().rev() {
            stack.push((c, level + 1));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::xmpp::element::{self, NS_STREAMS};
    use std::sync::Arc;

    fn scope() -> Scope {
        Scope {
            default_ns: Arc::from("jabber:client"),
            prefixes: vec![("stream".into(), Arc::from(NS_STREAMS))],
        }
    }

    /// The fast reading agrees with quick-xml whenever it answers.
    fn agrees(x: &[u8]) -> bool {
        let sc = scope();
        let Some(fast) = parse(x, &sc) else {
            return false;
        };
        let el = element::parse(x, &sc, false)
            .unwrap_or_else(|e| panic!("fast accepted what quick-xml rejects: {e:?} in {x:?}"));
        let slow = Tree::from_element(&el);
        assert_eq!(dump(&fast), dump(&slow), "{}", String::from_utf8_lossy(x));
        true
    }

    #[test]
    fn plain_units_are_read_here_and_agree() {
        for x in [
            &b"<message to='romeo@example.net' type=\"chat\"><body>h&#xe9;llo &amp; &lt;3 &#x1F600; &foo; &#0;</body><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"[..],
            b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
            b"<iq type='result' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b' name='Tom &amp; Jerry &lt;ops&gt;' subscription='both'><group>R&amp;D</group></item><item jid='c@d' name=\"Fran&#231;ois &quot;Frank&quot;\"/></query></iq>",
            b"<presence>\n  <show>away</show>\n  <status>in a\r\nmeeting</status>\n</presence >",
            b"<a xmlns='urn:x' xmlns:p='urn:p'><p:b p:c='1' xml:lang='en'><c xmlns=''/></p:b></a>",
            b"<message><body>a</body>tail<x/>more</message>trailing",
            b"<x a='\t1\n2'/>",
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>",
            b"<message><body>]]&gt; > x</body></message >",
            b"<q:r xmlns:q='urn:q'/>",
            b"<u:r/>",
            b"<a>& b;&;&#x;&#-1;</a>",
            b"<a><b><c><d xmlns='x&amp;' e='&#1;&bogus;\t'>&#0;&x;</d></c></b></a>",
        ] {
            assert!(agrees(x), "not read here: {}", String::from_utf8_lossy(x));
        }
    }

    #[test]
    fn unusual_units_go_to_quick_xml() {
        let sc = scope();
        for x in [
            &b"<message><body><![CDATA[<b>]]></body></message>"[..],
            b"<message><!-- c --></message>",
            b"<message><?pi x?></message>",
            b"<iq><query></iq>",
            b"<iq>",
            b"",
            b"text",
            b"<a b='1'c='2'/>",
            b"<a b = '1'/>",
            b"<a b=1/>",
            b"<a b='<'/>",
            b"<a>&amp</a>",
            b"<a>x\xffy</a>",
            b"<iq type='result'><query xmlns='jabber:iq:roster'><item jid='\xff'><group>\xc3</group></item></query></iq>",
            b"< a/>",
            b"<a / >",
            b"<\xc3\xa9/>",
            b"<a xmlns='x&amp;y'/>",
            b"<a></b>",
        ] {
            assert!(parse(x, &sc).is_none(), "{}", String::from_utf8_lossy(x));
        }
        // What follows a closed root is not looked at.
        assert!(parse(b"<a/><b/>", &sc).is_none() || agrees(b"<a/><b/>"));
    }

    #[test]
    fn deep_nesting_without_recursion() {
        let mut x = Vec::new();
        for _ in 0..50_000 {
            x.extend_from_slice(b"<a>");
        }
        for _ in 0..50_000 {
            x.extend_from_slice(b"</a>");
        }
        let sc = scope();
        let t = parse(&x, &sc).unwrap();
        assert_eq!(t.nodes.len(), NAMED_LEVELS);
    }

    #[test]
    fn swar_helpers_find_the_first_byte() {
        let w = u64::from_le_bytes(*b"ab<d&f\x01h");
        assert_eq!(bytes_eq(w, b'<').trailing_zeros() / 8, 2);
        assert_eq!(bytes_eq(w, b'&').trailing_zeros() / 8, 4);
        assert_eq!(bytes_below(w, 0x0E).trailing_zeros() / 8, 6);
        assert_eq!(bytes_eq(w, b'z'), 0);
        // Every position, every byte value: the lowest hit is exact.
        for pos in 0..8 {
            for c in 0..=255u8 {
                let mut b = [b'a'; 8];
                b[pos] = c;
                let w = u64::from_le_bytes(b);
                let want = (c == b'\'' || c == b'<' || c == b'&' || c < 0x0E).then_some(pos as u32);
                let hits = bytes_eq(w, b'\'')
                    | bytes_eq(w, b'<')
                    | bytes_eq(w, b'&')
                    | bytes_below(w, 0x0E);
                assert_eq!(
                    (hits != 0).then(|| hits.trailing_zeros() / 8),
                    want,
                    "{pos} {c}"
                );
            }
        }
    }

    /// The byte-at-a-time reading of an attribute value that `value_end`
    /// speeds up.
    fn value_end_bytewise(b: &[u8], vs: usize, q: u8) -> Option<(usize, bool)> {
        let mut special = false;
        for (k, &c) in b.get(vs..)?.iter().enumerate() {
            if c == q {
                return Some((vs + k, special));
            }
            match c {
                b'<' => return None,
                b'&' | b'\t' | b'\n' | b'\r' => special = true,
                _ => {}
            }
        }
        None
    }

    /// The byte-at-a-time reading of a name that `name_end` speeds up.
    fn name_end_bytewise(b: &[u8], from: usize) -> (usize, bool) {
        let rest = b.get(from..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')))
            .unwrap_or(rest.len());
        (from + n, rest[..n].contains(&b':'))
    }

    #[test]
    fn name_tables_match_their_definition() {
        for c in 0..=255u8 {
            let name = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':');
            let start = c.is_ascii_alphabetic() || c == b'_';
            assert_eq!(NAME_CHAR[usize::from(c)] & NAME != 0, name, "{c}");
            assert_eq!(is_name_start(c), start, "{c}");
            assert_eq!(NAME_CHAR[usize::from(c)] & COLON != 0, c == b':', "{c}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Four bytes at a time, the same answer as one at a time.
        #[test]
        fn name_end_matches_bytewise(
            b in proptest::collection::vec(proptest::prop_oneof![
                4 => proptest::prelude::Just(b'a'), 1 => proptest::prelude::Just(b':'),
                1 => proptest::prelude::Just(b'-'), 1 => proptest::prelude::Just(b'9'),
                1 => proptest::prelude::Just(b'='), 1 => proptest::prelude::Just(b' '),
                1 => proptest::prelude::Just(b'>'), 1 => proptest::prelude::Just(b'/'),
                2 => proptest::prelude::any::<u8>(),
            ], 0..40),
            from in 0usize..42,
        ) {
            proptest::prop_assert_eq!(name_end(&b, from), name_end_bytewise(&b, from));
        }

        /// Eight bytes at a time, the same answer as one at a time.
        #[test]
        fn value_end_matches_bytewise(
            b in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just(b'a'), proptest::prelude::Just(b'\''),
                proptest::prelude::Just(b'"'), proptest::prelude::Just(b'<'),
                proptest::prelude::Just(b'&'), proptest::prelude::Just(b'\t'),
                proptest::prelude::Just(b'\n'), proptest::prelude::Just(b'\r'),
                proptest::prelude::any::<u8>(),
            ], 0..40),
            vs in 0usize..42,
            dq in proptest::prelude::any::<bool>(),
        ) {
            let q = if dq { b'"' } else { b'\'' };
            proptest::prop_assert_eq!(value_end(&b, vs, q), value_end_bytewise(&b, vs, q));
        }

        /// Trees reuse the buffers of dropped ones (per thread): what one
        /// unit leaves behind never shows in the next.
        #[test]
        fn reused_buffers_change_nothing(a in 0usize..6, b in 0usize..6) {
            const UNITS: [&str; 6] = [
                "<message to='a@b/c' type='chat' id='x1'><body>Hi &amp; bye &#233;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
                "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A &apos;B&apos;'><group>G</group></item><item jid='c'/><item jid='d'/></query></iq>",
                "<presence from='a@b/r'><show>dnd</show><status>busy</status></presence>",
                "<a xmlns='urn:x' xmlns:p='urn:p'><p:b p:c='1'><c xmlns=''/></p:b></a>",
                "<a/>",
                "<iq><query></iq>",
            ];
            let sc = scope();
            let fresh = |x: &str| parse(x.as_bytes(), &sc).map(|t| dump(&t));
            let first = fresh(UNITS[a]);
            let _other = fresh(UNITS[b]);
            // A tree alive while another is read: each has its own buffers.
            let held = parse(UNITS[b].as_bytes(), &sc);
            proptest::prop_assert_eq!(fresh(UNITS[a]), first.clone());
            proptest::prop_assert_eq!(held.map(|t| dump(&t)), fresh(UNITS[b]));
            proptest::prop_assert_eq!(fresh(UNITS[a]), first);
        }
        /// Random edits of real units: whatever the fast reader accepts,
        /// quick-xml reads the same way.
        #[test]
        fn mutations_agree(
            which in 0usize..6,
            edits in proptest::collection::vec((0usize..400, 0usize..24), 0..4),
        ) {
            const UNITS: [&str; 6] = [
                "<message to='a@b/c' type='chat' id='x1'><body>Hi &amp; bye &#233;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
                "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A &apos;B&apos;'><group>G</group></item></query></iq>",
                "<presence from='a@b/r'><show>dnd</show><status>busy</status><c xmlns='http://jabber.org/protocol/caps' node='n' ver='v=' hash='sha-1'/></presence>",
                "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>x</text></stream:error>",
                "<iq type='error' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                "<a xmlns='urn:xmpp:sm:3' h='12'/>",
            ];
            const INSERTS: [&str; 24] = [
                "<", ">", "/", "'", "\"", "&", ";", "=", " ", "\t", "\r\n", ":", "x", "&amp;",
                "&#65;", "&#x;", "<b/>", "</b>", "<b>", "xmlns='u'", "xmlns:p='v'", "p:", "é", "&lt",
            ];
            let mut x = UNITS[which].as_bytes().to_vec();
            for (pos, ins) in edits {
                let pos = pos % (x.len() + 1);
                if ins % 3 == 0 && pos < x.len() {
                    x.remove(pos);
                } else {
                    let bytes = INSERTS[ins].as_bytes();
                    x.splice(pos..pos, bytes.iter().copied());
                }
            }
            let _ = agrees(&x);
        }
    }
}
