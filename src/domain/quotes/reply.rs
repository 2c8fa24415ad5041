//! The WhatsApp answer to an order, in Spanish and in seed 003's format:
//!
//! ```text
//! ✅ *Cotización Generada*
//!
//! 📦 *Productos:*
//! 1. Zapatos
//!    Cantidad: 2 × $45.99 = $91.98
//!
//! 💰 *Total: $91.98*
//!
//! ¿Deseas confirmar esta cotización? Responde *SÍ* o *NO*
//! ```
//!
//! Fragments the catalog lacks get a "No encontré" line; a message with no
//! product gets a friendly answer with catalog examples. WhatsApp refuses texts
//! over [`MAX_MESSAGE_CHARS`], so long answers are split between lines.

use std::fmt::Write as _;

use super::{money, quote::Quote};

/// WhatsApp's limit for a text message body, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// The messages answering `quote`, each at most [`MAX_MESSAGE_CHARS`].
pub fn render(quote: &Quote) -> Vec<String> {
    split(&render_text(quote), MAX_MESSAGE_CHARS)
}

/// The whole answer as one text (before splitting).
pub fn render_text(quote: &Quote) -> String {
    let mut out = String::new();
    if quote.lines.is_empty() {
        out.push_str("¡Hola! 👋 No logré identificar productos de nuestro catálogo en tu mensaje.\n");
        if !quote.unmatched.is_empty() {
            out.push('\n');
            unmatched_lines(quote, &mut out);
        }
        if quote.examples.is_empty() {
            out.push_str("\nEscríbeme qué productos quieres y cuántos de cada uno.");
        } else {
            out.push_str("\nEscríbeme qué productos quieres y cuántos de cada uno, por ejemplo:\n");
            for (i, name) in quote.examples.iter().enumerate() {
                let _ = writeln!(out, "• {} {name}", i + 1);
            }
            out.pop();
        }
        return out;
    }
    out.push_str("✅ *Cotización Generada*\n\n📦 *Productos:*\n");
    for (n, line) in quote.lines.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. {}\n   Cantidad: {} × {} = {}",
            n + 1,
            line.name,
            line.quantity,
            money::format(line.unit_price_minor, &line.currency),
            money::format(line.subtotal_minor, &line.currency),
        );
    }
    out.push('\n');
    for total in &quote.totals {
        let _ = writeln!(out, "💰 *Total: {}*", money::format(total.amount_minor, &total.currency));
    }
    if !quote.unmatched.is_empty() {
        out.push('\n');
        unmatched_lines(quote, &mut out);
    }
    out.push_str("\n¿Deseas confirmar esta cotización? Responde *SÍ* o *NO*");
    out
}

fn unmatched_lines(quote: &Quote, out: &mut String) {
    for u in &quote.unmatched {
        let _ = write!(out, "⚠️ No encontré: {}", u.text);
        if !u.suggestions.is_empty() {
            let names: Vec<&str> = u.suggestions.iter().map(|(_, name)| name.as_str()).collect();
            let _ = write!(out, " (¿quisiste decir {}?)", join_o(&names));
        }
        out.push('\n');
    }
}

/// "a", "a o b", "a, b o c".
fn join_o(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} o {last}", rest.join(", ")),
    }
}

/// The answer to an image, audio, sticker, location or other non-text
/// message: the parser reads only text.
pub fn non_text(examples: &[String]) -> String {
    let mut out = String::from(
        "🙏 Por ahora solo puedo leer mensajes de texto. Escríbeme tu pedido con los productos y las cantidades",
    );
    match examples {
        [] => out.push('.'),
        [first, rest @ ..] => {
            let _ = write!(out, ", por ejemplo: \"2 {first}");
            if let Some(second) = rest.first() {
                let _ = write!(out, " y 1 {second}");
            }
            out.push_str("\".");
        }
    }
    out
}

/// Cuts `text` into pieces of at most `max` characters, between lines where
/// possible (a longer line is cut between characters).
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for line in text.split_inclusive('\n') {
        let len = line.chars().count();
        if cur_len + len > max && cur_len > 0 {
            parts.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if len > max {
            for c in line.chars() {
                if cur_len == max {
                    parts.push(std::mem::take(&mut cur));
                    cur_len = 0;
                }
                cur.push(c);
                cur_len += 1;
            }
        } else {
            cur.push_str(line);
            cur_len += len;
        }
    }
    if !cur.is_empty() || parts.is_empty() {
        parts.push(cur);
    }
    // A piece ending in a newline looks odd as a chat message.
    for p in &mut parts {
        let trimmed = p.trim_end_matches('\n').len();
        p.truncate(trimmed);
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        parts.push(String::new());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::quotes::quote::{QuoteLine, Total, UnmatchedLine};

    fn line(name: &str, quantity: u32, price: i64) -> QuoteLine {
        QuoteLine {
            sku: name.to_uppercase(),
            name: name.into(),
            quantity,
            unit_price_minor: price,
            subtotal_minor: price * i64::from(quantity),
            currency: "MXN".into(),
            confidence: 1.0,
        }
    }

    #[test]
    fn a_quote_renders_in_the_seed_format() {
        let quote = Quote {
            lines: vec![line("Zapatos", 2, 4599), line("Camisa", 1, 2550)],
            unmatched: vec![],
            totals: vec![Total { currency: "MXN".into(), amount_minor: 11748 }],
            examples: vec![],
        };
        assert_eq!(
            render(&quote),
            ["✅ *Cotización Generada*\n\n📦 *Productos:*\n1. Zapatos\n   Cantidad: 2 × $45.99 = $91.98\n2. Camisa\n   Cantidad: 1 × $25.50 = $25.50\n\n💰 *Total: $117.48*\n\n¿Deseas confirmar esta cotización? Responde *SÍ* o *NO*"]
        );
    }

    #[test]
    fn unmatched_fragments_get_a_line_with_suggestions() {
        let quote = Quote {
            lines: vec![line("Zapatos", 2, 4599)],
            unmatched: vec![UnmatchedLine {
                text: "sombrero".into(),
                quantity: Some(1),
                suggestions: vec![("GOR-001".into(), "Gorra".into()), ("CAM-001".into(), "Camisa".into())],
            }],
            totals: vec![Total { currency: "MXN".into(), amount_minor: 9198 }],
            examples: vec![],
        };
        let text = render_text(&quote);
        assert!(text.contains("💰 *Total: $91.98*\n\n⚠️ No encontré: sombrero (¿quisiste decir Gorra o Camisa?)\n\n¿Deseas"), "{text}");
    }

    #[test]
    fn nothing_understood_gets_examples() {
        let quote = Quote { lines: vec![], unmatched: vec![], totals: vec![], examples: vec!["Zapatos".into(), "Camisa".into()] };
        let text = render_text(&quote);
        assert!(text.contains("• 1 Zapatos\n• 2 Camisa") && !text.contains("Cotización"), "{text}");
        assert!(non_text(&quote.examples).contains("\"2 Zapatos y 1 Camisa\""));
    }

    #[test]
    fn long_answers_are_split_under_the_limit() {
        let lines = (0..300).map(|i| line(&format!("Producto número {i}"), 1, 100)).collect();
        let quote = Quote { lines, unmatched: vec![], totals: vec![Total { currency: "MXN".into(), amount_minor: 30000 }], examples: vec![] };
        let parts = render(&quote);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_MESSAGE_CHARS));
        assert_eq!(parts.concat().matches("Cantidad:").count(), 300);
        let long = "ñ".repeat(10_000);
        assert!(split(&long, MAX_MESSAGE_CHARS).iter().all(|p| p.chars().count() <= MAX_MESSAGE_CHARS));
        assert_eq!(split(&long, MAX_MESSAGE_CHARS).concat(), long);
    }
}
