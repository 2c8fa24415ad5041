//! The catalog as the parser reads it: every word of every product name and
//! alias gets a token id, shared by its generated plural and singular forms;
//! names are paths of token ids in a trie whose end nodes name the product.
//! Matching a message is then hash lookups, whole words only: "pan" is never
//! found inside "pantalón".
//!
//! Built once per catalog version ([`super::store`] swaps it when products
//! change); immutable and shared afterwards.

use std::collections::HashMap;

use super::{
    forms,
    fuzzy::{self, DeletionIndex},
    lexicon,
    text::{self, Kind},
};

/// A product as the quote index needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogProduct {
    pub sku: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub price_minor: i64,
    pub currency: String,
}

pub(super) type TokenId = u32;
pub(super) type ProductIdx = u32;
pub(super) type NodeId = u32;

pub(super) const ROOT: NodeId = 0;

/// Confidence of a word read through a generated plural or singular form.
const INFLECTED: f32 = 0.98;

/// Confidence of a word read through its sound ("martiyo" for "martillo").
const SOUND_ALIKE: f32 = 0.85;

/// How many products a trie node remembers below it (for suggestions).
const REACH: usize = 4;

/// A catalog word form: the token it stands for, and whether it was written
/// in the catalog or generated (plural/singular).
#[derive(Clone, Copy, Debug)]
struct Form {
    token: TokenId,
    generated: bool,
}

#[derive(Debug, Default)]
pub(super) struct Node {
    /// The product whose name or alias ends here (the first one, by catalog
    /// order, if several share it).
    pub terminal: Option<ProductIdx>,
    /// Products whose names pass through here, at most [`REACH`] of them.
    pub reach: Vec<ProductIdx>,
    /// How many products pass through here.
    pub reach_count: u32,
}

/// A typo lookup's answer.
#[derive(Debug, PartialEq)]
pub(super) enum Fuzzy {
    None,
    /// One catalog word at the smallest distance.
    One(TokenId, f32),
    /// Several catalog words tie: the shopper must say which.
    Tie(Vec<TokenId>),
}

/// The searchable catalog. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct QuoteIndex {
    products: Vec<CatalogProduct>,
    forms: HashMap<String, Form, FxBuild>,
    /// Sound-alike keys ([`forms::phonetic`]) of the forms; `None` when two
    /// catalog words share one (then it decides nothing).
    sounds: HashMap<String, Option<TokenId>, FxBuild>,
    /// Forms of [`fuzzy::MIN_LEN`]+ letters by deletion-index slot.
    fuzzy_forms: Vec<(Vec<char>, TokenId)>,
    fuzzy: DeletionIndex,
    edges: HashMap<(NodeId, TokenId), NodeId, FxBuild>,
    nodes: Vec<Node>,
    /// Products whose name or alias contains the token (content words only).
    postings: Vec<Vec<ProductIdx>>,
    /// Names that end on the same trie node as an earlier product's.
    collisions: usize,
    default_currency: Option<String>,
}

impl QuoteIndex {
    /// Indexes `products` in the order given (earlier ones win name clashes).
    pub fn build(products: Vec<CatalogProduct>) -> Self {
        let mut index = Self {
            products: Vec::new(),
            forms: HashMap::default(),
            sounds: HashMap::default(),
            fuzzy_forms: Vec::new(),
            fuzzy: DeletionIndex::default(),
            edges: HashMap::default(),
            nodes: vec![Node::default()],
            postings: Vec::new(),
            collisions: 0,
            default_currency: most_common_currency(&products),
        };
        for (p, product) in products.iter().enumerate() {
            for phrase in std::iter::once(&product.name).chain(&product.aliases) {
                index.insert_phrase(phrase, p as ProductIdx);
            }
        }
        index.products = products;
        for (form, f) in &index.forms {
            if lexicon::is_known(form) {
                continue;
            }
            if let Some(key) = forms::phonetic(form) {
                let slot = index.sounds.entry(key).or_insert(Some(f.token));
                if *slot != Some(f.token) {
                    *slot = None;
                }
            }
        }
        let slots: Vec<(&String, TokenId)> = {
            let mut v: Vec<_> = index.forms.iter().map(|(f, form)| (f, form.token)).collect();
            v.retain(|(f, _)| f.chars().count() >= fuzzy::MIN_LEN && !lexicon::is_known(f));
            v.sort();
            v
        };
        index.fuzzy = DeletionIndex::build(slots.iter().map(|(f, _)| f.as_str()));
        index.fuzzy_forms = slots.into_iter().map(|(f, t)| (f.chars().collect(), t)).collect();
        if index.collisions > 0 {
            tracing::warn!(
                quotes.name_collisions = index.collisions,
                "several products share a name or alias; quotes pick the first by sku"
            );
        }
        index
    }

    fn insert_phrase(&mut self, phrase: &str, product: ProductIdx) {
        let words: Vec<String> = text::tokenize(phrase)
            .into_iter()
            .filter_map(|t| match t.kind {
                Kind::Word(w) => Some(lexicon::canonical_unit(&w).map_or(w, str::to_owned)),
                Kind::Num(n) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        if words.is_empty() {
            return;
        }
        let ids: Vec<TokenId> = words.iter().map(|w| self.intern(w, product)).collect();
        self.insert_path(&ids, product);
        // "papel de baño" is also written "papel baño".
        let without_joiners: Vec<TokenId> = words
            .iter()
            .zip(&ids)
            .filter(|(w, _)| !matches!(w.as_str(), "de" | "del"))
            .map(|(_, &id)| id)
            .collect();
        if !without_joiners.is_empty() && without_joiners.len() < ids.len() {
            self.insert_path(&without_joiners, product);
        }
        // "coca cola 600" is also written "cocacola 600".
        if words.len() > 1 && words[..2].iter().all(|w| w.chars().all(char::is_alphabetic)) {
            let joined = self.intern(&words[..2].concat(), product);
            let path: Vec<TokenId> = std::iter::once(joined).chain(ids[2..].iter().copied()).collect();
            self.insert_path(&path, product);
        }
    }

    /// The token of a catalog word, registering it and its inflected forms.
    fn intern(&mut self, word: &str, product: ProductIdx) -> TokenId {
        let token = match self.forms.get(word) {
            Some(f) if !f.generated => f.token,
            _ => {
                let token = self.postings.len() as TokenId;
                self.postings.push(Vec::new());
                self.forms.insert(word.to_owned(), Form { token, generated: false });
                for form in forms::plurals(word).into_iter().chain(forms::singulars(word)) {
                    self.forms.entry(form).or_insert(Form { token, generated: true });
                }
                token
            }
        };
        if !lexicon::is_known(word) {
            let posting = &mut self.postings[token as usize];
            if posting.last() != Some(&product) {
                posting.push(product);
            }
        }
        token
    }

    fn insert_path(&mut self, ids: &[TokenId], product: ProductIdx) {
        let mut node = ROOT;
        for &id in ids {
            node = match self.edges.get(&(node, id)) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len() as NodeId;
                    self.nodes.push(Node::default());
                    self.edges.insert((node, id), child);
                    child
                }
            };
            let n = &mut self.nodes[node as usize];
            if !n.reach.contains(&product) && n.reach.last() != Some(&product) {
                n.reach_count += 1;
                if n.reach.len() < REACH {
                    n.reach.push(product);
                }
            }
        }
        let n = &mut self.nodes[node as usize];
        match n.terminal {
            None => n.terminal = Some(product),
            Some(p) if p != product => self.collisions += 1,
            Some(_) => {}
        }
    }

    /// The catalog word `word` (already folded) stands for, exactly or inflected.
    pub(super) fn lookup(&self, word: &str) -> Option<(TokenId, f32)> {
        let word = lexicon::canonical_unit(word).unwrap_or(word);
        self.forms.get(word).map(|f| (f.token, if f.generated { INFLECTED } else { 1.0 }))
    }

    /// Catalog words within the typo budget of `word`, or spelt the same way
    /// to the ear (a sound-alike counts as one edit).
    pub(super) fn fuzzy(&self, word: &str, scratch: &mut Vec<u32>) -> Fuzzy {
        if let Some(Some(token)) = forms::phonetic(word).and_then(|key| self.sounds.get(&key).copied()) {
            return Fuzzy::One(token, SOUND_ALIKE);
        }
        let max = fuzzy::max_distance(word.chars().count());
        if max == 0 {
            return Fuzzy::None;
        }
        let chars: Vec<char> = word.chars().collect();
        scratch.clear();
        self.fuzzy.candidates(&chars, max, scratch);
        let mut best = usize::MAX;
        let mut tokens: Vec<TokenId> = Vec::new();
        for &slot in scratch.iter() {
            let (form, token) = &self.fuzzy_forms[slot as usize];
            // Two letters more or less is a different word ("camisetas" is
            // not "camisas"), not a typo.
            if chars.len().abs_diff(form.len()) > 1 {
                continue;
            }
            let Some(d) = fuzzy::osa_distance(&chars, form, max.min(best)) else { continue };
            if d < best {
                best = d;
                tokens.clear();
            }
            if d == best && !tokens.contains(token) {
                tokens.push(*token);
            }
        }
        match tokens.len() {
            0 => Fuzzy::None,
            1 => Fuzzy::One(tokens[0], if best <= 1 { 0.85 } else { 0.7 }),
            _ => Fuzzy::Tie(tokens),
        }
    }

    /// Products sharing a content word with a fragment word, within two edits
    /// (for "¿quisiste decir…?").
    pub(super) fn suggest(&self, word: &str, out: &mut Vec<ProductIdx>, scratch: &mut Vec<u32>) {
        if word.chars().count() < 3 || lexicon::is_known(word) {
            return;
        }
        let push = |out: &mut Vec<ProductIdx>, token: TokenId| {
            for &p in &self.postings[token as usize] {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        };
        if let Some((token, _)) = self.lookup(word) {
            push(out, token);
            return;
        }
        let chars: Vec<char> = word.chars().collect();
        if !(fuzzy::MIN_LEN - 1..=fuzzy::MAX_LEN).contains(&chars.len()) {
            return;
        }
        let max = if chars.len() < fuzzy::MIN_LEN { 1 } else { 2 };
        scratch.clear();
        self.fuzzy.candidates(&chars, max, scratch);
        let mut found: Vec<(usize, TokenId)> = scratch
            .iter()
            .filter_map(|&slot| {
                let (form, token) = &self.fuzzy_forms[slot as usize];
                fuzzy::osa_distance(&chars, form, max).map(|d| (d, *token))
            })
            .collect();
        found.sort_unstable();
        for (_, token) in found {
            push(out, token);
        }
    }

    /// Products whose name or alias contains `token` as a content word.
    pub(super) fn products_with(&self, token: TokenId) -> &[ProductIdx] {
        &self.postings[token as usize]
    }

    pub(super) fn child(&self, node: NodeId, token: TokenId) -> Option<NodeId> {
        self.edges.get(&(node, token)).copied()
    }

    pub(super) fn node(&self, node: NodeId) -> &Node {
        &self.nodes[node as usize]
    }

    pub fn product(&self, idx: u32) -> &CatalogProduct {
        &self.products[idx as usize]
    }

    pub fn products(&self) -> &[CatalogProduct] {
        &self.products
    }

    /// Names of the first `n` products, to show a shopper what to write.
    pub fn examples(&self, n: usize) -> Vec<String> {
        self.products.iter().take(n).map(|p| p.name.clone()).collect()
    }

    /// The currency most products are priced in (for an empty quote).
    pub fn default_currency(&self) -> Option<&str> {
        self.default_currency.as_deref()
    }
}

fn most_common_currency(products: &[CatalogProduct]) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for p in products {
        match counts.iter_mut().find(|(c, _)| *c == p.currency) {
            Some((_, n)) => *n += 1,
            None => counts.push((&p.currency, 1)),
        }
    }
    counts.iter().max_by_key(|(_, n)| *n).map(|(c, _)| (*c).to_owned())
}

/// FxHash (rustc's hasher): the index hashes short keys on every message
/// word, where SipHash's DoS resistance buys nothing (keys come from the
/// catalog; message words only probe).
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

pub(super) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}
