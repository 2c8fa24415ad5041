//! Message text as the parser sees it: folded (lower case, no accents, emoji
//! dropped, keycaps and full-width digits made ASCII) and cut into tokens with
//! their byte spans in the original, so unmatched fragments can be quoted back
//! as the shopper wrote them.
//!
//! Invariant: rendering the tokens ([`normalize`]) and tokenising that again
//! gives the same tokens, so normalising twice changes nothing.

/// One token of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Letters (and digits glued by `.`/`,`/`/` that are not a plain number,
    /// such as "1.5", or runs of 10+ digits such as phone numbers).
    Word(String),
    /// A whole number written with up to 9 digits ("1.000" is 1000).
    Num(u32),
    /// A symbol that means something next to a number: `#`, `$`, `%`, `x` (×).
    Sym(char),
    /// End of a clause: `\n`, `,`, `;`, `+` and the like (`list`) or `.`, `!`,
    /// `?` (a sentence end).
    Break { list: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// Byte span in the original text.
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            _ => None,
        }
    }
}

/// What a character becomes once folded.
enum Class {
    Letter(char),
    /// A letter with a two-letter ASCII folding (æ, œ, ß).
    Letters(char, char),
    Digit(u8),
    Symbol(char),
    Break { list: bool },
    /// Invisible modifiers (combining accents, variation selectors, keycap
    /// enclosure, zero-width joiner): dropped without splitting the word, so
    /// "2️⃣" is "2" and a decomposed "é" is "e".
    Drop,
    Space,
}

fn classify(c: char) -> Class {
    match c {
        '0'..='9' => Class::Digit(c as u8 - b'0'),
        '０'..='９' => Class::Digit((c as u32 - '０' as u32) as u8),
        '\u{300}'..='\u{36f}' | '\u{fe00}'..='\u{fe0f}' | '\u{20e3}' | '\u{200d}' | '\u{200b}' | '\u{ad}' => Class::Drop,
        '×' | '✖' => Class::Symbol('x'),
        '#' | '$' | '%' => Class::Symbol(c),
        '\n' | '\r' | ',' | ';' | '+' | '•' | '·' | '\u{2028}' | '\u{2029}' => Class::Break { list: true },
        '.' | '!' | '?' | '¡' | '¿' | '…' => Class::Break { list: false },
        c if c.is_alphabetic() || (c.is_alphanumeric() && !c.is_ascii()) => {
            let mut lower = c.to_lowercase();
            let first = lower.next().unwrap_or(c);
            // Multi-char lower cases ("İ" → "i̇") end in combining marks, dropped anyway.
            fold_letter(first)
        }
        _ => Class::Space,
    }
}

/// Latin letters with diacritics lose them; ñ becomes n (shoppers type either).
fn fold_letter(c: char) -> Class {
    let base = match c {
        'á' | 'à' | 'ä' | 'â' | 'ã' | 'å' | 'ā' | 'ă' | 'ą' | 'ª' => 'a',
        'é' | 'è' | 'ë' | 'ê' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'í' | 'ì' | 'ï' | 'î' | 'ī' | 'į' | 'ı' => 'i',
        'ó' | 'ò' | 'ö' | 'ô' | 'õ' | 'ø' | 'ō' | 'ő' | 'º' => 'o',
        'ú' | 'ù' | 'ü' | 'û' | 'ū' | 'ů' | 'ű' | 'ų' => 'u',
        'ñ' | 'ń' | 'ň' => 'n',
        'ç' | 'ć' | 'č' => 'c',
        'ý' | 'ÿ' => 'y',
        'ś' | 'š' => 's',
        'ź' | 'ż' | 'ž' => 'z',
        'ł' => 'l',
        'ð' => 'd',
        'æ' => return Class::Letters('a', 'e'),
        'œ' => return Class::Letters('o', 'e'),
        'ß' => return Class::Letters('s', 's'),
        'ｘ' => 'x',
        c if ('ａ'..='ｚ').contains(&c) => char::from(b'a' + (c as u32 - 'ａ' as u32) as u8),
        c => c,
    };
    Class::Letter(base)
}

/// Cuts `text` into tokens. Letters and digits never share a token ("3kg" is
/// 3 and "kg", "x3" is `x` and 3), because shoppers glue them freely.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(text.len() / 4 + 1);
    let mut chars = text.char_indices().peekable();
    let mut word = String::new();
    let mut word_start = 0;
    let mut word_end = 0;
    // A number being read: its digits (with separators) and span.
    let mut num = String::new();
    let mut num_start = 0;
    let mut num_end = 0;

    let flush_word = |out: &mut Vec<Token>, word: &mut String, start: usize, end: usize| {
        if !word.is_empty() {
            let w = std::mem::take(word);
            let kind = if w == "x" { Kind::Sym('x') } else { Kind::Word(w) };
            out.push(Token { kind, start, end });
        }
    };
    let flush_num = |out: &mut Vec<Token>, num: &mut String, start: usize, end: usize| {
        if !num.is_empty() {
            out.push(Token { kind: number_kind(num), start, end });
            num.clear();
        }
    };

    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        match classify(c) {
            Class::Letter(l) => {
                flush_num(&mut out, &mut num, num_start, num_end);
                if word.is_empty() {
                    word_start = i;
                }
                word.push(l);
                word_end = end;
            }
            Class::Letters(a, b) => {
                flush_num(&mut out, &mut num, num_start, num_end);
                if word.is_empty() {
                    word_start = i;
                }
                word.push(a);
                word.push(b);
                word_end = end;
            }
            Class::Digit(d) => {
                flush_word(&mut out, &mut word, word_start, word_end);
                if num.is_empty() {
                    num_start = i;
                }
                num.push(char::from(b'0' + d));
                num_end = end;
            }
            Class::Drop => {
                if !word.is_empty() {
                    word_end = end;
                } else if !num.is_empty() {
                    num_end = end;
                }
            }
            Class::Symbol(s) => {
                flush_word(&mut out, &mut word, word_start, word_end);
                flush_num(&mut out, &mut num, num_start, num_end);
                out.push(Token { kind: Kind::Sym(s), start: i, end });
            }
            Class::Break { list } => {
                // "1,5", "1.000" and "1/2" keep their separator when a digit follows.
                let next_is_digit = chars.peek().is_some_and(|&(_, n)| matches!(classify(n), Class::Digit(_)));
                if matches!(c, ',' | '.') && !num.is_empty() && next_is_digit && !num.ends_with(['.', '/']) {
                    num.push('.');
                    continue;
                }
                flush_word(&mut out, &mut word, word_start, word_end);
                flush_num(&mut out, &mut num, num_start, num_end);
                push_break(&mut out, list, i, end);
            }
            Class::Space => {
                let next_is_digit = chars.peek().is_some_and(|&(_, n)| matches!(classify(n), Class::Digit(_)));
                if c == '/' && !num.is_empty() && next_is_digit && !num.contains(['.', '/']) {
                    num.push('/');
                    continue;
                }
                flush_word(&mut out, &mut word, word_start, word_end);
                flush_num(&mut out, &mut num, num_start, num_end);
            }
        }
    }
    flush_word(&mut out, &mut word, word_start, word_end);
    flush_num(&mut out, &mut num, num_start, num_end);
    if matches!(out.last(), Some(Token { kind: Kind::Break { .. }, .. })) {
        out.pop();
    }
    out
}

/// Consecutive breaks collapse into one (a list break wins over a sentence
/// end); a message never starts with one.
fn push_break(out: &mut Vec<Token>, list: bool, start: usize, end: usize) {
    match out.last_mut() {
        None => {}
        Some(Token { kind: Kind::Break { list: prev }, end: e, .. }) => {
            *prev |= list;
            *e = end;
        }
        Some(_) => out.push(Token { kind: Kind::Break { list }, start, end }),
    }
}

/// Digits with `.` separators: "1.000" (groups of three) is a thousand;
/// anything else with a separator ("1.5", "1/2") stays a word, never a
/// quantity. Ten digits or more are a phone number or a code, also a word.
fn number_kind(raw: &str) -> Kind {
    let plain: String;
    let digits = if raw.contains('.') && !raw.contains('/') {
        let mut groups = raw.split('.');
        let first = groups.next().unwrap_or("");
        let thousands = !first.is_empty() && first.len() <= 3 && groups.clone().all(|g| g.len() == 3);
        if !thousands {
            return Kind::Word(raw.trim_end_matches('.').to_owned());
        }
        plain = raw.replace('.', "");
        plain.as_str()
    } else if raw.contains('/') {
        return Kind::Word(raw.to_owned());
    } else {
        raw
    };
    let digits_trimmed = digits.trim_start_matches('0');
    if digits_trimmed.len() > 9 {
        return Kind::Word(digits.to_owned());
    }
    Kind::Num(digits_trimmed.parse().unwrap_or(0))
}

/// The folded text: tokens joined by spaces, list breaks as `,`, sentence ends
/// as `.`. Idempotent.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for t in tokenize(text) {
        if !out.is_empty() {
            out.push(' ');
        }
        match &t.kind {
            Kind::Word(w) => out.push_str(w),
            Kind::Num(n) => out.push_str(&n.to_string()),
            Kind::Sym(s) => out.push(*s),
            Kind::Break { list: true } => out.push(','),
            Kind::Break { list: false } => out.push('.'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_case_accents_emoji_and_keycaps() {
        assert_eq!(normalize("¡Hola! Quiero 2️⃣ PANTALÓNES 👖 y ｘ３ Ñandú"), "hola . quiero 2 pantalones y x 3 nandu");
        assert_eq!(normalize("e\u{301}"), "e");
    }

    #[test]
    fn splits_digits_from_letters_and_keeps_number_separators() {
        assert_eq!(normalize("3kg lechuga1 2x x3"), "3 kg lechuga 1 2 x x 3");
        assert_eq!(normalize("1.000 piezas, 1,5 kg, 1/2 kilo"), "1000 piezas , 1.5 kg , 1/2 kilo");
        assert_eq!(normalize("llama al 5512345678"), "llama al 5512345678");
        assert_eq!(normalize("xl xbox"), "xl xbox");
    }

    #[test]
    fn collapses_breaks() {
        assert_eq!(normalize("a.\n b!! "), "a , b");
        assert_eq!(normalize(", . a"), "a");
    }

    fn fold_ascii(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                'á' | 'Á' => 'a',
                'é' | 'É' => 'e',
                'í' | 'Í' => 'i',
                'ó' | 'Ó' => 'o',
                'ú' | 'Ú' | 'ü' => 'u',
                'ñ' | 'Ñ' => 'n',
                c => c,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn normalising_twice_changes_nothing(s in "\\PC{0,40}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn spanish_text_normalises_twice_to_the_same(s in "[a-zA-ZáéíóúñÑ0-9 ,.;x×!?¿+/#$%\n-]{0,60}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn accents_and_case_change_nothing(s in "[a-zA-ZáéíóúÁÉÍÓÚñÑü0-9 ,.]{0,60}") {
            prop_assert_eq!(normalize(&s.to_uppercase()), normalize(&s));
            prop_assert_eq!(normalize(&fold_ascii(&s)), normalize(&s));
        }

        #[test]
        fn spans_always_lie_on_char_boundaries(s in "\\PC{0,40}") {
            for t in tokenize(&s) {
                prop_assert!(s.is_char_boundary(t.start) && s.is_char_boundary(t.end) && t.start <= t.end);
            }
        }
    }
}
