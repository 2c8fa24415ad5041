//! Payment links for orders confirmed over WhatsApp (STRIPE_API_*, RELEVO_PAYMENT_LINKS).

use secrecy::SecretString;

use super::{list, Error};

/// Stripe's API.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// Which provider hosts the payment links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkProvider {
    Stripe,
    MercadoPago,
}

/// Payment links for orders confirmed over WhatsApp.
#[derive(Clone)]
pub struct PaymentLinkSettings {
    /// `RELEVO_PAYMENT_LINKS` (`stripe` or `mercadopago`); unset: Stripe when
    /// `STRIPE_API_KEY` is set, else Mercado Pago.
    pub provider: Option<LinkProvider>,
    /// `STRIPE_API_KEY` (`sk_…`).
    pub stripe_api_key: Option<SecretString>,
    /// `STRIPE_API_BASE` (default https://api.stripe.com).
    pub stripe_api_base: String,
    /// `STRIPE_PAYMENT_METHODS` (default `card,oxxo`).
    pub stripe_payment_methods: Vec<String>,
    /// `RELEVO_CHECKOUT_RETURN_URL`: where shoppers land after paying (default
    /// `http://<RELEVO_ADDR>/checkout/return`, a page Relevo serves).
    pub return_url: String,
}

impl PaymentLinkSettings {
    pub(super) fn from_lookup(get: &impl Fn(&str) -> Option<String>, addr: &str) -> Result<Self, Error> {
        let provider = match get("RELEVO_PAYMENT_LINKS").as_deref().map(str::trim) {
            None | Some("") => None,
            Some("stripe") => Some(LinkProvider::Stripe),
            Some("mercadopago") => Some(LinkProvider::MercadoPago),
            Some(other) => {
                return Err(Error { name: "RELEVO_PAYMENT_LINKS", reason: format!("{other:?} is not stripe or mercadopago") })
            }
        };
        let methods = list(Some(get("STRIPE_PAYMENT_METHODS").unwrap_or_else(|| "card,oxxo".into())));
        if methods.is_empty() {
            return Err(Error { name: "STRIPE_PAYMENT_METHODS", reason: "names no payment method".into() });
        }
        Ok(Self {
            provider,
            stripe_api_key: get("STRIPE_API_KEY").map(SecretString::from),
            stripe_api_base: get("STRIPE_API_BASE").unwrap_or_else(|| STRIPE_API_BASE.into()),
            stripe_payment_methods: methods,
            return_url: get("RELEVO_CHECKOUT_RETURN_URL").unwrap_or_else(|| format!("http://{addr}/checkout/return")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<PaymentLinkSettings, Error> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        PaymentLinkSettings::from_lookup(&|name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()), "127.0.0.1:8080")
    }

    #[test]
    fn payment_links_default_to_card_and_oxxo_with_relevos_return_page() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.provider, s.stripe_payment_methods.clone()), (None, vec!["card".to_owned(), "oxxo".to_owned()]));
        assert_eq!(s.return_url, "http://127.0.0.1:8080/checkout/return");
        assert_eq!(s.stripe_api_base, STRIPE_API_BASE);
        let s = settings(&[("RELEVO_PAYMENT_LINKS", "mercadopago"), ("STRIPE_PAYMENT_METHODS", "card")]).unwrap();
        assert_eq!((s.provider, s.stripe_payment_methods), (Some(LinkProvider::MercadoPago), vec!["card".to_owned()]));
        assert_eq!(settings(&[("RELEVO_PAYMENT_LINKS", "paypal")]).err().unwrap().name, "RELEVO_PAYMENT_LINKS");
    }
}
