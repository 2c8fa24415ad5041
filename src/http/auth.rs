//! Bearer-token authentication for `/api/v1`.

use poem::Request;
use poem_openapi::{auth::Bearer, SecurityScheme};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::AppState;

/// `Authorization: Bearer <RELEVO_ADMIN_TOKEN>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin_token")]
pub struct AdminAuth(());

async fn check_admin_token(req: &Request, bearer: Bearer) -> Option<()> {
    let state = req.data::<AppState>()?;
    token_matches(state.admin_token.expose_secret(), &bearer.token).then_some(())
}

/// Constant-time comparison; the length check first is not a timing leak worth
/// hiding (the token length is fixed and public).
fn token_matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(!token_matches("s3cret-token", "s3cret-tokem"));
        assert!(!token_matches("s3cret-token", "s3cret"));
        assert!(!token_matches("s3cret-token", ""));
    }
}
