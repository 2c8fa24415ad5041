//! Amounts in minor units written for a shopper: `$1,234.50` (MXN, USD and
//! the other peso/dollar currencies), `S/ 1,234.50` (PEN), `€1,234.50`, and
//! `1,234.50 XYZ` for the rest; decimals follow the currency (JPY none,
//! KWD three).

/// `minor` units of `currency` (ISO 4217 code) as display text.
pub fn format(minor: i64, currency: &str) -> String {
    let code = currency.trim().to_ascii_uppercase();
    let exponent = iso_currency::Currency::from_code(&code)
        .and_then(|c| c.exponent())
        .map_or(2, u32::from);
    let amount = digits(minor.unsigned_abs(), exponent);
    let sign = if minor < 0 { "-" } else { "" };
    match code.as_str() {
        "MXN" | "USD" | "ARS" | "CLP" | "COP" | "CAD" | "AUD" | "NZD" | "UYU" | "DOP" | "CUP" | "SGD" | "HKD" => {
            format!("{sign}${amount}")
        }
        "PEN" => format!("{sign}S/ {amount}"),
        "EUR" => format!("{sign}€{amount}"),
        "GBP" => format!("{sign}£{amount}"),
        "BRL" => format!("{sign}R$ {amount}"),
        "GTQ" => format!("{sign}Q{amount}"),
        "BOB" => format!("{sign}Bs {amount}"),
        "CRC" => format!("{sign}₡{amount}"),
        "PYG" => format!("{sign}₲{amount}"),
        _ => format!("{sign}{amount} {code}"),
    }
}

/// `units` with thousands separators and `exponent` decimals: 123450, 2 → "1,234.50".
fn digits(units: u64, exponent: u32) -> String {
    let scale = 10u64.pow(exponent);
    let (whole, frac) = (units / scale, units % scale);
    let raw = whole.to_string();
    let mut out = String::with_capacity(raw.len() + raw.len() / 3 + 4);
    for (i, c) in raw.chars().enumerate() {
        if i > 0 && (raw.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if exponent > 0 {
        out.push('.');
        out.push_str(&format!("{frac:0width$}", width = exponent as usize));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn money_is_written_per_currency() {
        assert_eq!(format(123_450, "MXN"), "$1,234.50");
        assert_eq!(format(4599, "usd"), "$45.99");
        assert_eq!(format(123_450, "PEN"), "S/ 1,234.50");
        assert_eq!(format(5, "EUR"), "€0.05");
        assert_eq!(format(1500, "JPY"), "1,500 JPY");
        assert_eq!(format(1_234_567, "KWD"), "1,234.567 KWD");
        assert_eq!(format(100_000_000, "MXN"), "$1,000,000.00");
        assert_eq!(format(-250, "MXN"), "-$2.50");
    }
}
