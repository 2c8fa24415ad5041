//! Bounded typo matching: a SymSpell-style deletion index over the catalog's
//! word forms, so a misspelt word finds its few candidates by hash lookups
//! instead of a scan of the catalog, and an optimal-string-alignment distance
//! (a swap of neighbours counts as one edit) to confirm them.
//!
//! Only words of [`MIN_LEN`] letters or more take part, on both sides: short
//! words are too close to each other ("pan"/"pen") for a typo to be guessed.

/// Shortest word (in characters) that may be matched with a typo.
pub const MIN_LEN: usize = 5;

/// Longest word (in characters) matched with a typo: longer ones are not
/// words a shopper misspells, and their deletions cost quadratic time.
pub const MAX_LEN: usize = 24;

/// Edits allowed for a word of `len` characters: one for 5–7, two for 8 to
/// [`MAX_LEN`], none otherwise.
pub fn max_distance(len: usize) -> usize {
    match len {
        MIN_LEN..=7 => 1,
        8..=MAX_LEN => 2,
        _ => 0,
    }
}

/// Deletion hashes of every indexed form, sorted, each with the form's slot.
#[derive(Debug, Default)]
pub struct DeletionIndex {
    entries: Vec<(u64, u32)>,
}

impl DeletionIndex {
    /// `forms[i]` is indexed under slot `i` (forms under [`MIN_LEN`] are skipped).
    pub fn build<'a>(forms: impl IntoIterator<Item = &'a str>) -> Self {
        let mut entries = Vec::new();
        for (slot, form) in forms.into_iter().enumerate() {
            let chars: Vec<char> = form.chars().collect();
            if !(MIN_LEN..=MAX_LEN).contains(&chars.len()) {
                continue;
            }
            for_each_deletion(&chars, 2, |h| entries.push((h, slot as u32)));
        }
        entries.sort_unstable();
        entries.dedup();
        Self { entries }
    }

    /// Slots of the forms that may lie within `max` edits of `word` (to be
    /// confirmed with [`osa_distance`]); may repeat a slot.
    pub fn candidates(&self, word: &[char], max: usize, out: &mut Vec<u32>) {
        if word.len() > MAX_LEN + max {
            return;
        }
        for_each_deletion(word, max, |h| {
            let from = self.entries.partition_point(|&(e, _)| e < h);
            out.extend(self.entries[from..].iter().take_while(|&&(e, _)| e == h).map(|&(_, s)| s));
        });
    }
}

/// Calls `f` with the hash of `chars` and of every string made by deleting up
/// to `depth` (≤ 2) characters from it.
fn for_each_deletion(chars: &[char], depth: usize, mut f: impl FnMut(u64)) {
    let n = chars.len();
    f(hash_skipping(chars, usize::MAX, usize::MAX));
    if depth >= 1 {
        for i in 0..n {
            f(hash_skipping(chars, i, usize::MAX));
            if depth >= 2 {
                for j in i + 1..n {
                    f(hash_skipping(chars, i, j));
                }
            }
        }
    }
}

/// FNV-1a of the characters except positions `a` and `b`, length-tagged so
/// different deletions rarely collide (a collision only costs a check).
fn hash_skipping(chars: &[char], a: usize, b: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut len = 0u64;
    for (i, &c) in chars.iter().enumerate() {
        if i == a || i == b {
            continue;
        }
        h ^= c as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        len += 1;
    }
    h ^ (len << 56)
}

/// Optimal string alignment distance (Damerau–Levenshtein without
/// overlapping edits), stopping early once it exceeds `max`.
pub fn osa_distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    let mut rows = vec![0usize; 3 * width];
    for (j, cell) in rows[..width].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        let (cur, prev, prev2) = ((i % 3) * width, ((i - 1) % 3) * width, ((i + 1) % 3) * width);
        rows[cur] = i;
        let mut row_min = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev + j] + 1).min(rows[cur + j - 1] + 1).min(rows[prev + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2 + j - 2] + 1);
            }
            rows[cur + j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
    }
    let d = rows[(n % 3) * width + m];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn distance_counts_swaps_as_one_edit() {
        assert_eq!(osa_distance(&chars("camiza"), &chars("camisa"), 2), Some(1));
        assert_eq!(osa_distance(&chars("camsia"), &chars("camisa"), 2), Some(1));
        assert_eq!(osa_distance(&chars("lechuga"), &chars("leche"), 2), None);
        assert_eq!(osa_distance(&chars("zapatos"), &chars("zapatos"), 0), Some(0));
    }

    #[test]
    fn the_index_finds_forms_within_two_edits() {
        let index = DeletionIndex::build(["camisas", "pantalones", "leche"]);
        let mut out = Vec::new();
        index.candidates(&chars("camizas"), 1, &mut out);
        assert!(out.contains(&0));
        out.clear();
        index.candidates(&chars("pantalnoes"), 2, &mut out);
        assert!(out.contains(&1));
        out.clear();
        index.candidates(&chars("lechuga"), 2, &mut out);
        assert!(!out.contains(&2));
    }
}
