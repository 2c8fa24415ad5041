//! `highlevel_tokens`: the recurring run that keeps a location's access token
//! fresh. Each run refreshes the pair if it has less than an hour left, sleeps
//! (a durable timer) until an hour before the new expiry, then starts the next
//! run. Keyed by the location; a location that must be reconnected ends the
//! chain (the run fails saying so) and reconnecting starts a new one.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::{
    domain::highlevel::{api::HighLevel, locations, tokens::TokenError},
    engine::{self, RunCtx, StepError, Workflow},
};

/// Refresh when less than this is left.
const AHEAD: Duration = Duration::hours(1);

pub struct HighLevelTokens {
    pub highlevel: Arc<HighLevel>,
}

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HighLevelTokensInput {
    pub location_id: String,
}

impl Workflow for HighLevelTokens {
    const NAME: &'static str = "highlevel_tokens";
    type Input = HighLevelTokensInput;

    fn ordering_key(input: &HighLevelTokensInput) -> Option<String> {
        Some(format!("highlevel-tokens:{}", input.location_id))
    }

    async fn run(&self, ctx: &mut RunCtx, input: HighLevelTokensInput) -> Result<(), StepError> {
        let (tokens, pool, location) = (self.highlevel.tokens.clone(), ctx.pool().clone(), input.location_id.clone());
        let expires: DateTime<Utc> = ctx
            .step("refresh", |_| async move {
                tokens.refresh_if_expiring(&pool, &location, Utc::now() + AHEAD).await.map_err(token_step_error)
            })
            .await?;
        ctx.sleep_until("until_due", expires - AHEAD).await?;
        let _: uuid::Uuid = ctx
            .tx_step("next", move |tx, _| Box::pin(async move { Ok(start_using(tx, &input.location_id).await?) }))
            .await?;
        Ok(())
    }
}

/// Starts the location's refresher unless one is going (a reconnection of a
/// connected location keeps its chain).
pub async fn ensure_using(tx: &mut PgConnection, location_id: &str) -> Result<(), engine::Error> {
    if locations::live_refresher_using(tx, location_id).await?.is_none() {
        start_using(tx, location_id).await?;
    }
    Ok(())
}

async fn start_using(tx: &mut PgConnection, location_id: &str) -> Result<uuid::Uuid, engine::Error> {
    let input = HighLevelTokensInput { location_id: location_id.to_owned() };
    let run_id = engine::start_using::<HighLevelTokens>(tx, &input, None).await?;
    locations::set_refresher_using(tx, location_id, run_id).await?;
    Ok(run_id)
}

pub(super) fn token_step_error(e: TokenError) -> StepError {
    match e {
        TokenError::Transient { .. } => StepError::transient(e),
        e => StepError::permanent(e),
    }
}
