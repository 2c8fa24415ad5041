//! Reading quantities: digits, number words ("treinta y dos"), dozens, pairs
//! and halves, as the parser meets them.

use super::*;

impl Parser<'_> {
    /// A quantity starting at `i`: digits, number words ("treinta y dos"),
    /// "docena(s)", "par(es)", "media docena", "medio kilo". Returns the value
    /// and where the tokens after it start.
    pub(super) fn read_number(&self, i: usize) -> Option<(u32, usize)> {
        let (mut value, mut j) = if let Some(n) = self.num(i) {
            (n, i + 1)
        } else {
            let w = self.word(i)?;
            if lexicon::is_half(w) {
                match self.word(i + 1).and_then(lexicon::multiplier) {
                    Some(m) => return Some((m / 2, self.skip_de(i + 2))),
                    // "medio kilo": one unit of a product sold by the unit.
                    None => return self.is_word(i + 1, lexicon::is_unit).then_some((1, i + 1)),
                }
            }
            if lexicon::multiplier(w).is_some() {
                (1, i)
            } else {
                self.number_words(i)?
            }
        };
        if let Some(m) = self.word(j).and_then(lexicon::multiplier) {
            value = value.saturating_mul(m);
            j = self.skip_de(j + 1);
        }
        Some((value.min(MAX_QUANTITY), j))
    }

    pub(super) fn skip_de(&self, j: usize) -> usize {
        if self.is_word(j, |w| matches!(w, "de" | "del")) {
            j + 1
        } else {
            j
        }
    }

    /// A run of Spanish number words: "veintiún", "ciento treinta y dos",
    /// "dos mil", "dos cientos".
    pub(super) fn number_words(&self, i: usize) -> Option<(u32, usize)> {
        #[derive(Clone, Copy, PartialEq)]
        enum Last {
            None,
            Unit,
            Teen,
            Tens,
            TensAnd,
            Hundreds,
            Thousand,
        }
        let (mut total, mut cur, mut last, mut j) = (0u32, 0u32, Last::None, i);
        while let Some(w) = self.word(j) {
            let Some(nw) = lexicon::number_word(w) else {
                let unit_follows = self.word(j + 1).and_then(lexicon::number_word).is_some_and(|n| matches!(n, NumberWord::Unit(_)));
                if matches!(w, "y" | "e") && last == Last::Tens && unit_follows {
                    last = Last::TensAnd;
                    j += 1;
                    continue;
                }
                break;
            };
            let fresh = matches!(last, Last::None | Last::Hundreds | Last::Thousand);
            last = match nw {
                NumberWord::Unit(v) if fresh || last == Last::TensAnd => {
                    cur += v;
                    Last::Unit
                }
                NumberWord::Teen(v) if fresh => {
                    cur += v;
                    Last::Teen
                }
                NumberWord::Tens(v) if fresh => {
                    cur += v;
                    Last::Tens
                }
                NumberWord::Hundreds(v) if matches!(last, Last::None | Last::Thousand) => {
                    cur += v;
                    Last::Hundreds
                }
                NumberWord::Cientos if last == Last::Unit && cur < 10 => {
                    cur *= 100;
                    Last::Hundreds
                }
                NumberWord::Thousand if total == 0 && last != Last::TensAnd => {
                    total = cur.max(1) * 1000;
                    cur = 0;
                    Last::Thousand
                }
                _ => break,
            };
            j += 1;
        }
        (j > i).then_some((total + cur, j))
    }
}
