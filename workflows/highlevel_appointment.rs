//! `highlevel_appointment`: applies one HighLevel appointment event, keyed by
//! the HighLevel appointment id so events of one appointment apply in arrival
//! order. One step, `apply` (`domain::appointments::inbound`): upsert, stale
//! and echo checks, conflicts flagged. It never pushes anything back.

use serde::{Deserialize, Serialize};

use crate::{
    domain::appointments::inbound::{self, Applied},
    engine::{RunCtx, StepError, Workflow},
    providers::highlevel::payload::{Appointment, Change},
};

pub struct HighLevelAppointment;

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HighLevelAppointmentInput {
    pub location_id: String,
    pub change: Change,
    pub appointment: Appointment,
}

impl Workflow for HighLevelAppointment {
    const NAME: &'static str = "highlevel_appointment";
    type Input = HighLevelAppointmentInput;

    fn ordering_key(input: &HighLevelAppointmentInput) -> Option<String> {
        Some(format!("highlevel-appointment:{}", input.appointment.id))
    }

    async fn run(&self, ctx: &mut RunCtx, input: HighLevelAppointmentInput) -> Result<(), StepError> {
        let _: Applied = ctx
            .tx_step("apply", move |tx, info| {
                Box::pin(async move {
                    Ok(inbound::apply_using(tx, &input.location_id, input.change, &input.appointment, info.run_id).await?)
                })
            })
            .await?;
        Ok(())
    }
}
