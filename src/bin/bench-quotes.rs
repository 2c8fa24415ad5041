//! `just bench-quotes`: quote-parser throughput on one core. Generates a
//! 1,000-product catalog (invented Spanish-looking names and aliases, a third
//! of them multi-word, some with numbers) and 10,000 varied order messages
//! (greetings, number words, plurals, `x3`, units, typos, unknown products,
//! several lines), then parses them all on this thread and prints
//! `quotes_per_sec=`.
//!
//! Baseline, same messages, same thread, same run: the matcher a first version
//! would write (seed 003's "look for each catalog name in the lowercased
//! message"), printed as `naive_quotes_per_sec=` and the ratio
//! `quotes_vs_naive_substring=`. It is the cheap wrong answer (it matches "pan"
//! inside "pantalón" and reads no quantity words), so the ratio says what the
//! real parser's understanding costs, or saves, per message.

use std::time::Instant;

use clap::Parser;
use relevo::domain::quotes::{CatalogProduct, Quote, QuoteIndex};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Passes over the messages (the figure is their mean).
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

/// xorshift64*: deterministic, so every run parses the same messages.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const ONSETS: &[&str] = &["b", "c", "ch", "d", "f", "g", "j", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "z", "br", "tr", "pl"];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ia", "ue"];
const CODAS: &[&str] = &["", "", "", "n", "r", "l", "s"];

fn invented_word(rng: &mut Rng) -> String {
    let syllables = 2 + rng.below(2);
    let mut w = String::new();
    for i in 0..syllables {
        w.push_str(rng.pick::<&str>(ONSETS));
        w.push_str(rng.pick::<&str>(VOWELS));
        if i + 1 == syllables {
            w.push_str(rng.pick::<&str>(CODAS));
        }
    }
    w
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn catalog(rng: &mut Rng, n: usize) -> Vec<CatalogProduct> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let head = invented_word(rng);
        let name = match rng.below(6) {
            0 => format!("{} de {}", capitalise(&head), invented_word(rng)),
            1 => format!("{} {}", capitalise(&head), invented_word(rng)),
            2 => format!("{} {} {}", capitalise(&head), invented_word(rng), 100 * (1 + rng.below(9))),
            _ => capitalise(&head),
        };
        if !seen.insert(name.to_lowercase()) {
            continue;
        }
        let aliases = (0..rng.below(3)).map(|_| invented_word(rng)).collect();
        out.push(CatalogProduct {
            sku: format!("SKU-{:04}", out.len()),
            name,
            aliases,
            price_minor: 100 + rng.below(100_000) as i64,
            currency: "MXN".into(),
        });
    }
    out
}

const GREETINGS: &[&str] = &["", "Hola! ", "Buenas tardes, ", "hola buen día ", "Qué tal, "];
const REQUESTS: &[&str] = &["quiero ", "me cotizas ", "necesito ", "dame ", "quisiera cotizar ", ""];
const CLOSINGS: &[&str] = &["", " por favor", " gracias!", " porfa", ". Saludos"];
const NUMBER_WORDS: &[&str] = &["un", "una", "dos", "tres", "cinco", "doce", "quince", "veintiún", "treinta y dos", "una docena de", "media docena de", "un par de"];
const UNITS: &[&str] = &["kilos de", "latas de", "cajas de", "paquetes de"];

fn plural(name: &str) -> String {
    let mut words: Vec<String> = name.split(' ').map(str::to_owned).collect();
    let w = &mut words[0];
    match w.chars().last() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => w.push('s'),
        Some('z') => {
            w.pop();
            w.push_str("ces");
        }
        Some(_) => w.push_str("es"),
        None => {}
    }
    words.join(" ")
}

fn typo(rng: &mut Rng, w: &str) -> String {
    let mut chars: Vec<char> = w.chars().collect();
    if chars.len() >= 6 {
        let i = 1 + rng.below(chars.len() - 2);
        chars.swap(i, i + 1);
    }
    chars.into_iter().collect()
}

fn line(rng: &mut Rng, products: &[CatalogProduct]) -> String {
    let p = rng.pick(products);
    let name = if !p.aliases.is_empty() && rng.below(3) == 0 { rng.pick(&p.aliases).clone() } else { p.name.to_lowercase() };
    match rng.below(9) {
        0 => format!("{} {}", 1 + rng.below(20), plural(&name)),
        1 => format!("{} {}", rng.pick(NUMBER_WORDS), plural(&name)),
        2 => format!("{} x{}", name, 1 + rng.below(9)),
        3 => format!("{}x {}", 1 + rng.below(9), name),
        4 => format!("{} {} {}", 1 + rng.below(5), rng.pick(UNITS), name),
        5 => format!("{} {}", 1 + rng.below(9), typo(rng, &name)),
        6 => format!("{} {}", 1 + rng.below(4), invented_word(rng)),
        7 => format!("{} talla {}", name, 20 + rng.below(20)),
        _ => name.to_uppercase(),
    }
}

fn message(rng: &mut Rng, products: &[CatalogProduct]) -> String {
    let lines: Vec<String> = (0..1 + rng.below(4)).map(|_| line(rng, products)).collect();
    let body = match rng.below(3) {
        0 => lines.join("\n"),
        1 => lines.join(", "),
        _ => lines.join(" y "),
    };
    format!("{}{}{}{}", rng.pick(GREETINGS), rng.pick(REQUESTS), body, rng.pick(CLOSINGS))
}

fn main() {
    let args = Args::parse();
    let mut rng = Rng(0x5eed_cafe_f00d_beef);
    let products = catalog(&mut rng, args.products);
    let messages: Vec<String> = (0..args.messages).map(|_| message(&mut rng, &products)).collect();

    let started = Instant::now();
    let index = QuoteIndex::build(products);
    let build = started.elapsed();

    let (mut items, mut unmatched) = (0usize, 0usize);
    let started = Instant::now();
    for _ in 0..args.passes.max(1) {
        for m in &messages {
            let parsed = index.parse(m);
            items += parsed.items.len();
            unmatched += parsed.unmatched.len();
            std::hint::black_box(Quote::price(&index, &parsed));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let quotes = (args.messages * args.passes.max(1)) as f64;
    let naive = naive_quotes_per_sec(index.products(), &messages);
    println!("products={}", index.products().len());
    println!("messages={}", args.messages);
    println!("index_build_ms={:.1}", build.as_secs_f64() * 1000.0);
    println!("items_per_message={:.2}", items as f64 / quotes);
    println!("unmatched_per_message={:.2}", unmatched as f64 / quotes);
    println!("us_per_quote={:.2}", elapsed * 1e6 / quotes);
    println!("quotes_per_sec={:.0}", quotes / elapsed);
    println!("naive_quotes_per_sec={naive:.0}");
    println!("quotes_vs_naive_substring={:.2}", quotes / elapsed / naive);
}

/// One pass of the naive matcher: every catalog name and alias looked for as
/// a substring of the lowercased message, the digits before it as quantity.
fn naive_quotes_per_sec(products: &[CatalogProduct], messages: &[String]) -> f64 {
    let names: Vec<(usize, String)> = products
        .iter()
        .enumerate()
        .flat_map(|(i, p)| std::iter::once(p.name.to_lowercase()).chain(p.aliases.iter().map(|a| a.to_lowercase())).map(move |n| (i, n)))
        .collect();
    let started = Instant::now();
    let mut total = 0i64;
    for m in messages {
        let folded = m.to_lowercase();
        for (i, name) in &names {
            if let Some(at) = folded.find(name.as_str()) {
                let before = folded[..at].trim_end();
                let digits: String = before.chars().rev().take_while(char::is_ascii_digit).collect();
                let quantity: i64 = digits.chars().rev().collect::<String>().parse().unwrap_or(1);
                total += quantity * products[*i].price_minor;
            }
        }
        std::hint::black_box(total);
    }
    messages.len() as f64 / started.elapsed().as_secs_f64()
}
