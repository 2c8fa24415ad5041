//! `inbound_event`: the run every stored webhook starts. Its one step routes the
//! event to the flow that handles it (payment fulfilment, WhatsApp quotes, …);
//! until a flow claims an event type, the step records that none did.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::engine::{RunCtx, StepError, Workflow};

pub struct InboundEvent;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InboundEventInput {
    pub event_id: Uuid,
    pub provider: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Workflow for InboundEvent {
    const NAME: &'static str = "inbound_event";
    type Input = InboundEventInput;

    async fn run(&self, ctx: &mut RunCtx, input: InboundEventInput) -> Result<(), StepError> {
        ctx.step("route", |_| async move {
            Ok(json!({
                "provider": input.provider,
                "type": input.kind,
                "flow": null,
                "note": "no flow handles this event type yet",
            }))
        })
        .await?;
        Ok(())
    }
}
