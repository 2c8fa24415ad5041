//! Reading an order message against a [`QuoteIndex`]: which catalog products,
//! how many of each, and which fragments named something the catalog lacks.
//!
//! One left-to-right pass over the tokens. At each position a catalog name
//! (longest match in the trie) wins over reading the words as a number or a
//! unit, except "medio/media" before "docena" or a unit and a unit word before
//! "de" ("3 latas de atún"). A quantity attaches, in this order, to the product
//! right after it (`2 zapatos`, `2x zapatos`, `dos kilos de queso`), or to the
//! product right before it at the end of a clause (`zapatos x3`, `zapatos 3`).
//! Numbers after "talla", "#", "del", before "ml"/"%", or in "de 600 ml" after a
//! product are attributes, never quantities.
//!
//! Less sure readings, with lower confidence: a typo or sound-alike, the start
//! of the only name that starts so ("2 coca"), an unknown container before
//! "de" and a product ("2 cubetas de pintura"), one word found in a single
//! product's name ("3 de pastor"). What follows "con"/"sin" right after a
//! product describes it.
//!
//! Unknown words are reported (`unmatched`) where a product was expected: after
//! a quantity, after a list connector or break that follows an item, or after
//! a request verb ("quiero sombreros"). Elsewhere (adjectives after a product,
//! chit-chat) they are ignored; filler words never appear.

mod numbers;

use super::{
    index::{Fuzzy, NodeId, ProductIdx, QuoteIndex, TokenId, ROOT},
    lexicon::{self, NumberWord},
    text::{self, Kind, Token},
};

/// Confidence of an item whose quantity was not written (1 is assumed).
const DEFAULT_QUANTITY: f32 = 0.8;
/// Confidence of an item named by the start of its only catalog name ("2 coca" for "Coca Cola 600 ml").
const PARTIAL_NAME: f32 = 0.75;
/// Confidence of an item named by one inner word of its name ("3 de pastor").
const INNER_WORD: f32 = 0.7;
/// Confidence of an item after an unknown word read as its unit ("2 cubetas de pintura").
const UNIT_GUESS: f32 = 0.85;
/// Largest quantity read; more is a code, not an order line.
const MAX_QUANTITY: u32 = 100_000;
/// Suggestions reported per unmatched fragment.
const MAX_SUGGESTIONS: usize = 3;

/// What the parser understood.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// Catalog products in the order first named, the same product merged.
    pub items: Vec<ParsedItem>,
    /// Fragments where a product was expected but none matched.
    pub unmatched: Vec<Unmatched>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParsedItem {
    /// Position in [`QuoteIndex::products`].
    pub product: u32,
    pub sku: String,
    pub quantity: u32,
    /// 1.0 for an exact name with a written quantity; lower for inflected
    /// forms (0.98), typos (0.85, 0.7), partial names and assumed quantities.
    pub confidence: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Unmatched {
    /// The fragment as the shopper wrote it.
    pub text: String,
    pub quantity: Option<u32>,
    /// Positions in [`QuoteIndex::products`] of products it may have meant.
    pub suggestions: Vec<u32>,
}

impl QuoteIndex {
    /// Understands an order message. Pure and allocation-light; never panics.
    pub fn parse(&self, text: &str) -> Parsed {
        let tokens = text::tokenize(text);
        Parser::new(self, text, &tokens).run()
    }
}

struct RawItem {
    product: ProductIdx,
    quantity: u32,
    explicit: bool,
    match_conf: f32,
}

struct Fragment {
    start: usize,
    end: usize,
    quantity: Option<u32>,
    suggestions: Vec<ProductIdx>,
}

enum Match {
    None,
    Product { product: ProductIdx, end: usize, conf: f32 },
    Ambiguous { end: usize, candidates: Vec<ProductIdx> },
}

struct Parser<'a> {
    index: &'a QuoteIndex,
    text: &'a str,
    toks: &'a [Token],
    /// The catalog token each message token stands for, with its confidence.
    ids: Vec<Option<(TokenId, f32)>>,
    items: Vec<RawItem>,
    unmatched: Vec<Unmatched>,
    pending: Option<u32>,
    /// The item a trailing quantity ("zapatos x3") may still attach to.
    last_item: Option<usize>,
    /// The previous content was a product: unknown words now are modifiers.
    after_product: bool,
    /// A product is expected here: unknown words are reported.
    slot: bool,
    saw_request: bool,
    /// An unknown word was read as the unit of the next product: less sure.
    unit_guess: bool,
    fragment: Option<Fragment>,
    scratch: Vec<u32>,
}

impl<'a> Parser<'a> {
    fn new(index: &'a QuoteIndex, text: &'a str, toks: &'a [Token]) -> Self {
        let mut scratch = Vec::new();
        let ids = toks
            .iter()
            .map(|t| match &t.kind {
                Kind::Word(w) => index.lookup(w).or_else(|| {
                    let typo_candidate = !lexicon::is_known(w) && w.chars().all(char::is_alphabetic);
                    match typo_candidate.then(|| index.fuzzy(w, &mut scratch)) {
                        Some(Fuzzy::One(token, conf)) => Some((token, conf)),
                        _ => None,
                    }
                }),
                // Names may hold numbers ("coca cola 600").
                Kind::Num(n) => index.lookup(&n.to_string()),
                _ => None,
            })
            .collect();
        Self {
            index,
            text,
            toks,
            ids,
            items: Vec::new(),
            unmatched: Vec::new(),
            pending: None,
            last_item: None,
            after_product: false,
            slot: false,
            saw_request: false,
            unit_guess: false,
            fragment: None,
            scratch,
        }
    }

    fn word(&self, i: usize) -> Option<&'a str> {
        self.toks.get(i).and_then(Token::word)
    }

    fn is_word(&self, i: usize, pred: impl Fn(&str) -> bool) -> bool {
        self.word(i).is_some_and(pred)
    }

    fn num(&self, i: usize) -> Option<u32> {
        match self.toks.get(i)?.kind {
            Kind::Num(n) => Some(n),
            _ => None,
        }
    }

    fn is_sym(&self, i: usize, s: char) -> bool {
        matches!(self.toks.get(i), Some(Token { kind: Kind::Sym(c), .. }) if *c == s)
    }

    /// End of the clause at `i`: nothing more, a break, or a list connector.
    fn clause_ends(&self, i: usize) -> bool {
        match self.toks.get(i).map(|t| &t.kind) {
            None | Some(Kind::Break { .. }) => true,
            Some(Kind::Word(w)) => lexicon::is_list_connector(w) || (lexicon::is_filler(w) && !lexicon::is_joiner(w)),
            _ => false,
        }
    }

    fn run(mut self) -> Parsed {
        let mut i = 0;
        while i < self.toks.len() {
            i = self.step(i);
        }
        self.end_fragment();
        self.finish()
    }

    /// Reads what starts at token `i`; returns where the next reading starts.
    fn step(&mut self, i: usize) -> usize {
        match &self.toks[i].kind {
            Kind::Break { list } => {
                self.end_fragment();
                self.pending = None;
                self.last_item = None;
                self.after_product = false;
                self.slot = *list && (!self.items.is_empty() || self.saw_request);
                return i + 1;
            }
            Kind::Sym('x') => {
                let Some(n) = self.num(i + 1) else { return i + 1 };
                match self.last_item {
                    Some(li) if !self.items[li].explicit && self.pending.is_none() => self.set_quantity(li, n),
                    _ => {
                        self.end_fragment();
                        self.pending = Some(n.min(MAX_QUANTITY)).filter(|&n| n > 0);
                    }
                }
                return i + 2;
            }
            // "$300" is a price, "#42" a model number: not quantities.
            Kind::Sym('$' | '#') => return if self.num(i + 1).is_some() { i + 2 } else { i + 1 },
            Kind::Sym(_) => return i + 1,
            _ => {}
        }

        let w = self.word(i);
        let half_quantity =
            w.is_some_and(lexicon::is_half) && self.is_word(i + 1, |n| lexicon::multiplier(n).is_some() || lexicon::is_unit(n));
        let unit_before_de = w.is_some_and(lexicon::is_unit) && self.is_word(i + 1, |n| matches!(n, "de" | "del"));
        if !half_quantity {
            match self.match_at(i) {
                Match::Product { product, end, conf } if !(unit_before_de && end == i + 1) => {
                    self.end_fragment();
                    self.add_item(product, conf);
                    return end;
                }
                Match::Ambiguous { end, candidates } if !unit_before_de => {
                    self.extend_fragment(i, end, candidates);
                    return end;
                }
                _ => {}
            }
        }

        if let Some((value, next)) = self.read_number(i) {
            return self.quantity(i, value, next);
        }

        let Some(w) = w else {
            // A decimal ("1.5") or a long code: a specification, not content.
            return i + 1;
        };
        if lexicon::is_unit(w) {
            // "kilo de queso": one of the unit.
            self.end_fragment();
            self.pending.get_or_insert(1);
            return if self.is_word(i + 1, |n| matches!(n, "de" | "del")) { i + 2 } else { i + 1 };
        }
        // "quesadillas con queso": what follows "con" right after a product
        // describes it (a catalog name with "con" was matched whole above);
        // "tortas con 2 refrescos" names a second item.
        let describes = w == "con" && self.after_product && self.num(i + 1).is_none() && self.read_number(i + 1).is_none();
        if lexicon::is_negation(w) || describes {
            self.end_fragment();
            let mut j = i + 1;
            while j < self.toks.len() && !self.clause_ends(j) && self.num(j).is_none() {
                j += 1;
            }
            return j;
        }
        if lexicon::is_list_connector(w) {
            self.end_fragment();
            self.after_product = false;
            self.slot = true;
            return i + 1;
        }
        if lexicon::is_request(w) {
            self.end_fragment();
            self.saw_request = true;
            self.slot = true;
            return i + 1;
        }
        if lexicon::is_joiner(w)
            && self.fragment.is_some()
            && self.is_content(i + 1)
            && matches!(self.match_at(i + 1), Match::None)
        {
            self.extend_fragment(i, i + 1, Vec::new());
            return i + 1;
        }
        if lexicon::is_known(w) {
            self.end_fragment();
            return i + 1;
        }
        // An unknown content word. Before "de" and a product it is a
        // container the lexicon lacks ("2 cubetas de pintura").
        if self.fragment.is_none()
            && self.is_word(i + 1, |n| matches!(n, "de" | "del"))
            && matches!(self.match_at(i + 2), Match::Product { .. })
        {
            self.unit_guess = true;
            return i + 2;
        }
        if self.fragment.is_some() || self.pending.is_some() || self.slot {
            self.extend_fragment(i, i + 1, Vec::new());
        }
        i + 1
    }

    /// A word that is neither in the lexicon nor part of a catalog name here.
    fn is_content(&self, i: usize) -> bool {
        self.word(i).is_some_and(|w| !lexicon::is_known(w) && w.chars().any(char::is_alphabetic))
    }

    /// The longest catalog name starting at `i`.
    fn match_at(&self, i: usize) -> Match {
        let mut node: NodeId = ROOT;
        let mut conf = 1.0f32;
        let mut best: Option<(ProductIdx, usize, f32)> = None;
        let mut deepest: Option<(NodeId, usize, f32)> = None;
        let mut j = i;
        while j < self.toks.len() {
            let step = |k: usize| self.ids.get(k).copied().flatten().and_then(|(t, c)| Some((self.index.child(node, t)?, c)));
            let (child, c) = match step(j) {
                Some(found) => found,
                // "jugo de naranja" for a catalog "Jugo naranja": a "de" the name lacks.
                None if j > i && self.is_word(j, |w| matches!(w, "de" | "del")) => match step(j + 1) {
                    Some(found) => {
                        j += 1;
                        found
                    }
                    None => break,
                },
                None => break,
            };
            node = child;
            conf = conf.min(c);
            j += 1;
            if let Some(p) = self.index.node(node).terminal {
                best = Some((p, j, conf));
            }
            // A path ending on "de" is not a name yet.
            if !self.is_word(j - 1, lexicon::is_joiner) {
                deepest = Some((node, j, conf));
            }
        }
        // Only the start of a name: accepted when just one product starts so
        // and the shopper did not go on naming something else; it beats a
        // shorter complete name ("coca cola 2 litros" is not the "coca" alias
        // of the 600 ml bottle when only the 2 L bottle is "coca cola 2 l…").
        let partial = deepest.filter(|&(_, end, _)| {
            self.is_content(i) && !self.is_content(end) && best.is_none_or(|(_, best_end, _)| end > best_end)
        });
        if let Some((node, end, conf)) = partial {
            let node = self.index.node(node);
            match node.reach_count {
                1 => return Match::Product { product: node.reach[0], end, conf: conf.min(PARTIAL_NAME) },
                n if n > 1 && best.is_none() => return Match::Ambiguous { end, candidates: node.reach.clone() },
                _ => {}
            }
        }
        match best {
            Some((product, end, conf)) => Match::Product { product, end, conf },
            None => Match::None,
        }
    }

    /// Places a quantity read from tokens `i..next`.
    fn quantity(&mut self, i: usize, value: u32, mut next: usize) -> usize {
        let prev = i.checked_sub(1);
        let prev_word = prev.and_then(|p| self.word(p));
        let marked = prev_word.is_some_and(lexicon::is_attribute_marker) || prev.is_some_and(|p| self.is_sym(p, '#'));
        let suffixed = self.is_word(next, lexicon::is_attribute_suffix) || self.is_sym(next, '%');
        // "zapatos de 600 ml", "coca de 2 litros": a specification of the product.
        let spec = self.after_product && matches!(prev_word, Some("de" | "del" | "con"));
        if value == 0 || marked || suffixed || spec {
            if suffixed || (spec && self.is_word(next, lexicon::is_unit)) {
                next += 1;
            }
            return next;
        }
        self.end_fragment();
        // "zapatos 3": a trailing quantity closing the clause.
        if let Some(li) = self.last_item {
            if !self.items[li].explicit && self.pending.is_none() && self.clause_ends(next) {
                self.set_quantity(li, value);
                return next;
            }
        }
        self.pending = Some(value);
        self.after_product = false;
        if self.is_sym(next, 'x') && self.num(next + 1).is_none() {
            next += 1;
        }
        if self.is_word(next, lexicon::is_unit) {
            let product_here = matches!(self.match_at(next), Match::Product { end, .. } if end > next + 1)
                || (!self.is_word(next + 1, |w| matches!(w, "de" | "del")) && !matches!(self.match_at(next), Match::None));
            if !product_here {
                next = self.skip_de(next + 1);
            }
        }
        next
    }

    fn set_quantity(&mut self, item: usize, value: u32) {
        let it = &mut self.items[item];
        it.quantity = value.clamp(1, MAX_QUANTITY);
        it.explicit = true;
        self.last_item = None;
    }

    fn add_item(&mut self, product: ProductIdx, match_conf: f32) {
        let (quantity, explicit) = match self.pending.take() {
            Some(q) => (q, true),
            None => (1, false),
        };
        let match_conf = if std::mem::take(&mut self.unit_guess) { match_conf.min(UNIT_GUESS) } else { match_conf };
        self.items.push(RawItem { product, quantity, explicit, match_conf });
        self.last_item = Some(self.items.len() - 1);
        self.after_product = true;
        self.slot = false;
    }

    fn extend_fragment(&mut self, start: usize, end: usize, candidates: Vec<ProductIdx>) {
        match &mut self.fragment {
            Some(f) => {
                f.end = end;
                f.suggestions.extend(candidates);
            }
            None => {
                self.fragment = Some(Fragment { start, end, quantity: self.pending.take(), suggestions: candidates });
                self.after_product = false;
                self.last_item = None;
            }
        }
    }

    fn end_fragment(&mut self) {
        let Some(mut f) = self.fragment.take() else { return };
        // "3 de pastor": one word found in a single product's name, though
        // not at its start, names that product.
        if f.end == f.start + 1 && f.suggestions.is_empty() {
            let only = self.ids[f.start].map(|(token, conf)| (self.index.products_with(token), conf));
            if let Some((&[product], conf)) = only {
                self.pending = f.quantity;
                self.add_item(product, conf.min(INNER_WORD));
                return;
            }
        }
        let mut suggestions = std::mem::take(&mut f.suggestions);
        for t in &self.toks[f.start..f.end] {
            if let Some(w) = t.word() {
                self.index.suggest(w, &mut suggestions, &mut self.scratch);
            }
        }
        let mut seen = Vec::new();
        suggestions.retain(|p| {
            let fresh = !seen.contains(p);
            seen.push(*p);
            fresh
        });
        suggestions.truncate(MAX_SUGGESTIONS);
        let text = self.text[self.toks[f.start].start..self.toks[f.end - 1].end].to_owned();
        self.unmatched.push(Unmatched { text, quantity: f.quantity, suggestions });
        self.slot = true;
    }

    fn finish(self) -> Parsed {
        let mut items: Vec<ParsedItem> = Vec::with_capacity(self.items.len());
        for raw in &self.items {
            let conf = if raw.explicit { raw.match_conf } else { raw.match_conf.min(DEFAULT_QUANTITY) };
            match items.iter_mut().find(|it| it.product == raw.product) {
                Some(it) => {
                    it.quantity = it.quantity.saturating_add(raw.quantity).min(MAX_QUANTITY);
                    it.confidence = it.confidence.min(conf);
                }
                None => items.push(ParsedItem {
                    product: raw.product,
                    sku: self.index.product(raw.product).sku.clone(),
                    quantity: raw.quantity,
                    confidence: conf,
                }),
            }
        }
        Parsed { items, unmatched: self.unmatched }
    }
}
