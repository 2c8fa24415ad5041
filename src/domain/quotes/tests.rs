//! Parser behaviour on a small catalog, the development set, and properties.

use proptest::prelude::*;

use super::*;

fn product(sku: &str, name: &str, aliases: &[&str], price_minor: i64) -> CatalogProduct {
    CatalogProduct {
        sku: sku.into(),
        name: name.into(),
        aliases: aliases.iter().map(|a| (*a).into()).collect(),
        price_minor,
        currency: "MXN".into(),
    }
}

/// A grocery catalog: multi-word names, shared first words, numbers in names.
fn grocery() -> QuoteIndex {
    QuoteIndex::build(vec![
        product("PAN-CAJA", "Pan de caja", &["pan bimbo"], 4500),
        product("PAPEL-B", "Papel de baño", &["papel higiénico"], 3200),
        product("ATUN", "Atún en agua", &["atun"], 2100),
        product("LECHE", "Leche entera", &["leche"], 2800),
        product("COCA-600", "Coca-Cola 600 ml", &["coca"], 1800),
        product("JABON", "Jabón", &[], 1500),
        product("LUZ", "Foco de luz", &["foco"], 3000),
        product("PANTALON", "Pantalón", &[], 39900),
        product("TOMATE", "Tomate", &["jitomate"], 3500),
        product("QUESO", "Queso Oaxaca", &[], 9000),
        product("HUEVO", "Huevo", &["huevos blancos"], 300),
    ])
}

fn items(index: &QuoteIndex, text: &str) -> Vec<(String, u32)> {
    index.parse(text).items.into_iter().map(|i| (i.sku, i.quantity)).collect()
}

fn unmatched(index: &QuoteIndex, text: &str) -> Vec<String> {
    index.parse(text).unmatched.into_iter().map(|u| u.text).collect()
}

fn pairs(v: &[(&str, u32)]) -> Vec<(String, u32)> {
    v.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
}

#[test]
fn multi_word_names_and_units_are_read() {
    let g = grocery();
    assert_eq!(items(&g, "2 pan de caja y 3 latas de atún"), pairs(&[("PAN-CAJA", 2), ("ATUN", 3)]));
    assert_eq!(items(&g, "dos papeles de baño, 2 kilos de tomate"), pairs(&[("PAPEL-B", 2), ("TOMATE", 2)]));
    assert_eq!(items(&g, "papel baño x4"), pairs(&[("PAPEL-B", 4)]));
    assert_eq!(items(&g, "3 cocacolas de 600 ml"), pairs(&[("COCA-600", 3)]));
    assert_eq!(items(&g, "una docena de huevos"), pairs(&[("HUEVO", 12)]));
    assert_eq!(items(&g, "treinta y dos jabones"), pairs(&[("JABON", 32)]));
    assert_eq!(items(&g, "veintiún focos"), pairs(&[("LUZ", 21)]));
    assert_eq!(items(&g, "un par de jabones y media docena de huevos"), pairs(&[("JABON", 2), ("HUEVO", 6)]));
}

#[test]
fn substrings_and_far_typos_never_match() {
    let g = grocery();
    assert_eq!(items(&g, "2 panes"), pairs(&[("PAN-CAJA", 2)]));
    assert!(items(&g, "1 lechuga").is_empty());
    assert_eq!(unmatched(&g, "1 lechuga"), ["lechuga"]);
    assert_eq!(items(&g, "1 pantalon y 2 panes de caja"), pairs(&[("PANTALON", 1), ("PAN-CAJA", 2)]));
}

#[test]
fn typos_match_long_words_only_with_lower_confidence() {
    let g = grocery();
    let parsed = g.parse("3 jitomtes");
    assert_eq!(parsed.items.len(), 1);
    assert!(parsed.items[0].confidence < 1.0);
    // "queso" has five letters: one typo is allowed, two are not.
    assert_eq!(items(&g, "1 quesso oaxaca"), pairs(&[("QUESO", 1)]));
    assert!(items(&g, "1 qeuos oaxaca").is_empty() || g.parse("1 qeuos oaxaca").items[0].confidence < 1.0);
    // A longer word is not a typo of a shorter one.
    let clothes = QuoteIndex::build(vec![product("CAM", "Camisa", &[], 1)]);
    assert!(clothes.parse("3 camisetas").items.is_empty());
    assert_eq!(clothes.parse("3 camisetas").unmatched.len(), 1);
    // Under five letters: no typo matching.
    assert!(items(&g, "2 atn").is_empty());
}

#[test]
fn what_follows_con_or_sin_after_a_product_describes_it() {
    let g = grocery();
    assert_eq!(items(&g, "2 pan de caja con queso oaxaca"), pairs(&[("PAN-CAJA", 2)]));
    assert_eq!(items(&g, "2 pan de caja sin queso, 1 leche"), pairs(&[("PAN-CAJA", 2), ("LECHE", 1)]));
    assert_eq!(items(&g, "2 pan de caja con 1 queso oaxaca"), pairs(&[("PAN-CAJA", 2), ("QUESO", 1)]));
}

#[test]
fn attributes_are_not_quantities() {
    let g = grocery();
    assert_eq!(items(&g, "pantalón talla 32 x2"), pairs(&[("PANTALON", 2)]));
    assert_eq!(items(&g, "2 pantalones talla 32"), pairs(&[("PANTALON", 2)]));
    assert_eq!(items(&g, "1 pantalón #42"), pairs(&[("PANTALON", 1)]));
}

#[test]
fn the_same_product_twice_is_merged_and_fillers_ignored() {
    let g = grocery();
    assert_eq!(items(&g, "Hola buenas tardes! me regalas 2 jabones porfa\n1 jabón más, gracias"), pairs(&[("JABON", 3)]));
    assert!(g.parse("hola, buenas noches, gracias!").items.is_empty());
    assert!(g.parse("hola, buenas noches, gracias!").unmatched.is_empty());
}

#[test]
fn unknown_products_are_reported_with_suggestions() {
    let g = grocery();
    // "papel" alone starts one catalog name only: that product, less sure.
    let parsed = g.parse("quiero 2 jabones y 3 papeles");
    assert_eq!(items(&g, "quiero 2 jabones y 3 papeles"), pairs(&[("JABON", 2), ("PAPEL-B", 3)]));
    assert!(parsed.items[1].confidence < 0.8 && parsed.unmatched.is_empty());
    let parsed = g.parse("2 sombreros y 1 jabon");
    assert_eq!(parsed.unmatched[0].text, "sombreros");
    assert_eq!(parsed.unmatched[0].quantity, Some(2));
    let parsed = g.parse("2 jabomes liquidos");
    assert_eq!(items(&g, "2 jabomes liquidos"), pairs(&[("JABON", 2)]), "{parsed:?}");
}

#[test]
fn ambiguous_starts_are_unmatched_with_every_candidate() {
    let index = QuoteIndex::build(vec![
        product("L1", "Leche entera", &[], 1),
        product("L2", "Leche deslactosada", &[], 1),
    ]);
    let parsed = index.parse("2 leches");
    assert!(parsed.items.is_empty());
    assert_eq!(parsed.unmatched.len(), 1);
    assert_eq!(parsed.unmatched[0].suggestions.len(), 2);
}

#[test]
fn a_quote_is_priced_and_rendered() {
    let index = QuoteIndex::build(vec![product("ZAP-001", "Zapatos", &["zapato"], 4599), product("CAM-001", "Camisa", &[], 2550)]);
    let quote = Quote::price(&index, &index.parse("Quiero 2 zapatos y 1 camisa"));
    assert_eq!(quote.total_minor(), 11748);
    assert_eq!(
        reply::render(&quote)[0],
        "✅ *Cotización Generada*\n\n📦 *Productos:*\n1. Zapatos\n   Cantidad: 2 × $45.99 = $91.98\n2. Camisa\n   Cantidad: 1 × $25.50 = $25.50\n\n💰 *Total: $117.48*\n\n¿Deseas confirmar esta cotización? Responde *SÍ* o *NO*"
    );
}

// --- the development set -------------------------------------------------

#[derive(serde::Deserialize)]
struct DevProduct {
    sku: String,
    name: String,
    aliases: Vec<String>,
    price_minor: i64,
    currency: String,
}

#[derive(serde::Deserialize)]
struct DevCase {
    text: String,
    items: Vec<DevItem>,
    unmatched: Vec<String>,
}

#[derive(serde::Deserialize)]
struct DevItem {
    sku: String,
    quantity: u32,
}

fn shared(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/quotes").join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the quote dev set must be at {} (a copy of shared/ beside the repo): {e}", path.display()))
}

#[test]
fn the_development_set_is_understood_at_least_95_percent_exactly() {
    let catalog: Vec<DevProduct> = serde_json::from_str(&shared("dev-catalog.json")).expect("dev-catalog.json parses");
    let index = QuoteIndex::build(
        catalog
            .into_iter()
            .map(|p| CatalogProduct { sku: p.sku, name: p.name, aliases: p.aliases, price_minor: p.price_minor, currency: p.currency })
            .collect(),
    );
    let cases: Vec<DevCase> = shared("dev-set.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("dev-set line parses"))
        .collect();
    assert!(!cases.is_empty(), "the dev set is empty");
    let mut misses = Vec::new();
    for case in &cases {
        let parsed = index.parse(&case.text);
        let mut got: Vec<(String, u32)> = parsed.items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
        let mut want: Vec<(String, u32)> = case.items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
        got.sort();
        want.sort();
        if got != want || parsed.unmatched.is_empty() != case.unmatched.is_empty() {
            let got_unmatched: Vec<&str> = parsed.unmatched.iter().map(|u| u.text.as_str()).collect();
            misses.push(format!("{:?}: got {got:?} unmatched {got_unmatched:?}, want {want:?} unmatched {:?}", case.text, case.unmatched));
        }
    }
    let exact = cases.len() - misses.len();
    assert!(
        exact * 100 >= cases.len() * 95,
        "{exact}/{} exact; misses:\n{}",
        cases.len(),
        misses.join("\n")
    );
}

// --- properties ------------------------------------------------------------

fn word() -> impl Strategy<Value = String> {
    "[a-zñáéíóú]{3,10}"
}

proptest! {
    #[test]
    fn every_generated_plural_of_a_catalog_name_maps_back(words in prop::collection::vec(word(), 1..3)) {
        let name = words.join(" ");
        prop_assume!(words.iter().all(|w| !lexicon::is_known(&text::normalize(w))));
        let index = QuoteIndex::build(vec![product("P", &name, &[], 100)]);
        let folded: Vec<String> = text::normalize(&name).split(' ').map(str::to_owned).collect();
        let mut forms = vec![folded.clone()];
        for (i, w) in folded.iter().enumerate() {
            for plural in forms::plurals(w) {
                let mut f = folded.clone();
                f[i] = plural;
                forms.push(f);
            }
        }
        for f in forms {
            let message = format!("2 {}", f.join(" "));
            let parsed = index.parse(&message);
            prop_assert_eq!(parsed.items.len(), 1, "{} -> {:?}", message, parsed);
            prop_assert_eq!(parsed.items[0].quantity, 2);
        }
    }

    #[test]
    fn accents_and_case_do_not_change_the_parse(s in "[a-zA-Záéíóúñ0-9 ,]{0,60}") {
        let g = grocery();
        let a = g.parse(&s);
        let b = g.parse(&s.to_uppercase());
        prop_assert_eq!(&a.items, &b.items);
        prop_assert_eq!(a.unmatched.len(), b.unmatched.len());
    }

    #[test]
    fn any_unicode_parses_without_panicking(s in "\\PC{0,200}") {
        let g = grocery();
        let parsed = g.parse(&s);
        let quote = Quote::price(&g, &parsed);
        for part in reply::render(&quote) {
            prop_assert!(part.chars().count() <= reply::MAX_MESSAGE_CHARS);
        }
    }

    #[test]
    fn greetings_emoji_and_line_order_change_nothing(
        lines in prop::collection::vec((1u32..50, prop::sample::select(vec![
            "pan de caja", "papel de baño", "jabones", "leche entera", "focos", "tomates", "queso oaxaca",
        ])), 1..5),
    ) {
        let g = grocery();
        let body: Vec<String> = lines.iter().map(|(q, name)| format!("{q} {name}")).collect();
        let plain = body.join(", ");
        let mut reversed = body.clone();
        reversed.reverse();
        let dressed = format!("Hola buenas tardes 👋 me cotizas {} por favor 🙏 gracias!", reversed.join("\n"));
        let sorted = |p: Parsed| {
            let mut v: Vec<(String, u32)> = p.items.into_iter().map(|i| (i.sku, i.quantity)).collect();
            v.sort();
            v
        };
        prop_assert_eq!(sorted(g.parse(&plain)), sorted(g.parse(&dressed)));
        prop_assert!(g.parse(&dressed).unmatched.is_empty());
    }

    #[test]
    fn number_words_up_to_999_parse_back(n in 1u32..1000) {
        let index = QuoteIndex::build(vec![product("J", "Jabón", &[], 1)]);
        let parsed = index.parse(&format!("{} jabones", spell(n)));
        prop_assert_eq!(parsed.items.iter().map(|i| i.quantity).collect::<Vec<_>>(), vec![n], "{}", spell(n));
    }
}

/// Spanish cardinal for 1–999 (as a shopper would write it).
fn spell(n: u32) -> String {
    const UNITS: [&str; 30] = [
        "", "un", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce", "trece",
        "catorce", "quince", "dieciséis", "diecisiete", "dieciocho", "diecinueve", "veinte", "veintiún", "veintidós",
        "veintitrés", "veinticuatro", "veinticinco", "veintiséis", "veintisiete", "veintiocho", "veintinueve",
    ];
    const TENS: [&str; 10] = ["", "", "", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta", "ochenta", "noventa"];
    const HUNDREDS: [&str; 10] = [
        "", "ciento", "doscientos", "trescientos", "cuatrocientos", "quinientos", "seiscientos", "setecientos",
        "ochocientos", "novecientos",
    ];
    let (h, rest) = (n / 100, n % 100);
    let mut parts = Vec::new();
    if n == 100 {
        return "cien".into();
    }
    if h > 0 {
        parts.push(HUNDREDS[h as usize].to_owned());
    }
    if rest > 0 && rest < 30 {
        parts.push(UNITS[rest as usize].to_owned());
    } else if rest >= 30 {
        parts.push(TENS[(rest / 10) as usize].to_owned());
        if rest % 10 > 0 {
            parts.push(format!("y {}", UNITS[(rest % 10) as usize]));
        }
    }
    parts.join(" ")
}

#[test]
fn the_longest_message_parses_in_bounded_time() {
    let g = grocery();
    let started = std::time::Instant::now();
    for text in ["ñ".repeat(4096), "jabonesx".repeat(512), "2 jabones ".repeat(409), "a".repeat(4096)] {
        g.parse(&text);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn grocery_phrasings_are_read() {
    let g = grocery();
    assert_eq!(items(&g, "4 rollos de papel de baño"), pairs(&[("PAPEL-B", 4)]));
    assert_eq!(items(&g, "2 cubetas de jabón"), pairs(&[("JABON", 2)]));
    assert_eq!(items(&g, "1 leche y 1 lechuga"), pairs(&[("LECHE", 1)]));
    assert_eq!(unmatched(&g, "1 leche y 1 lechuga"), ["lechuga"]);
    assert_eq!(items(&g, "2 coca cola de 600 mililitros"), pairs(&[("COCA-600", 2)]));
    assert_eq!(items(&g, "queso de oaxaca 2"), pairs(&[("QUESO", 2)]));
    assert_eq!(items(&g, "1 kilo de queso oaxaca y medio kilo de jitomate"), pairs(&[("QUESO", 1), ("TOMATE", 1)]));
}
