//! Spanish number inflection of catalog words: the plural forms a shopper may
//! write for a catalog singular, and the singular candidates of a catalog
//! plural. Rules, not a stemmer: a stemmer merges unrelated words (mesa/mes)
//! and splits real pairs (luz/luces). Over-generation is harmless because a
//! form only ever maps back to the catalog word it was generated from.

/// Plural forms of a folded word: vowel +s, í/ú also +es, z → ces, other
/// consonants +es; words ending in s or x get +es too (mes → meses), which is
/// a no-op in practice for those that never change (lunes, paraguas).
pub fn plurals(word: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    let Some(last) = word.chars().last() else { return out };
    if !last.is_alphabetic() || word.chars().count() < 2 {
        return out;
    }
    match last {
        'a' | 'e' | 'o' => out.push(format!("{word}s")),
        'i' | 'u' => {
            out.push(format!("{word}s"));
            out.push(format!("{word}es"));
        }
        'z' => out.push(format!("{}ces", &word[..word.len() - 1])),
        'y' => {
            out.push(format!("{word}es"));
            out.push(format!("{word}s"));
        }
        's' | 'x' => out.push(format!("{word}es")),
        _ => {
            out.push(format!("{word}es"));
            // Loanwords: "jean" → "jeans", "short" → "shorts".
            out.push(format!("{word}s"));
        }
    }
    out
}

/// Singular candidates of a folded word that may be a plural: -ces → z,
/// -es → drop "es" and drop "s", vowel+s → drop "s". Words under 4 letters
/// are left alone (mes, gas).
pub fn singulars(word: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    if word.chars().count() < 4 || !word.ends_with('s') {
        return out;
    }
    let stem = &word[..word.len() - 1];
    if let Some(base) = word.strip_suffix("ces") {
        out.push(format!("{base}z"));
    }
    if let Some(base) = word.strip_suffix("es") {
        if base.chars().last().is_some_and(|c| !is_vowel(c)) || base.ends_with(['i', 'u']) {
            out.push(base.to_owned());
        }
    }
    if stem.chars().last().is_some_and(is_vowel) {
        out.push(stem.to_owned());
    } else if !stem.ends_with('s') {
        // "jeans" → "jean".
        out.push(stem.to_owned());
    }
    out
}

/// A sound-alike key for Spanish spelling slips that cost two edits but no
/// doubt: ll/y, v/b, z/s, soft c/s, hard c/qu/k, silent h, doubled letters
/// ("martiyo" and "martillo" share one). Only for words of five letters or more.
pub fn phonetic(word: &str) -> Option<String> {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 5 || !chars.iter().all(char::is_ascii_lowercase) {
        return None;
    }
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        let (sound, used) = match (c, next) {
            ('l', Some('l')) => ('y', 2),
            ('c', Some('h')) => ('x', 2),
            ('q', Some('u')) => ('k', 2),
            ('c', Some('e' | 'i')) | ('z', _) => ('s', 1),
            ('c', _) | ('k', _) => ('k', 1),
            ('v', _) | ('w', _) => ('b', 1),
            ('h', _) => {
                i += 1;
                continue;
            }
            (c, _) => (c, 1),
        };
        if !out.ends_with(sound) {
            out.push(sound);
        }
        i += used;
    }
    Some(out)
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_follow_spanish_rules() {
        assert_eq!(plurals("camisa"), ["camisas"]);
        assert!(plurals("pantalon").contains(&"pantalones".to_owned()));
        assert!(plurals("papel").contains(&"papeles".to_owned()));
        assert_eq!(plurals("luz"), ["luces"]);
        assert_eq!(plurals("mes"), ["meses"]);
        assert!(plurals("calcetin").contains(&"calcetines".to_owned()));
        assert!(plurals("").is_empty() && plurals("600").is_empty());
    }

    #[test]
    fn sound_alike_spellings_share_a_key() {
        assert_eq!(phonetic("martiyo"), phonetic("martillo"));
        assert_eq!(phonetic("sapatos"), phonetic("zapatos"));
        assert_eq!(phonetic("quesos"), phonetic("kesos"));
        assert_ne!(phonetic("lechuga"), phonetic("leche"));
        assert_eq!(phonetic("pan"), None);
    }

    #[test]
    fn singulars_recover_the_catalog_word() {
        assert!(singulars("zapatos").contains(&"zapato".to_owned()));
        assert!(singulars("calcetines").contains(&"calcetin".to_owned()));
        assert!(singulars("luces").contains(&"luz".to_owned()));
        assert!(singulars("detergentes").contains(&"detergente".to_owned()));
        assert!(singulars("jeans").contains(&"jean".to_owned()));
        assert!(singulars("mes").is_empty());
    }
}
