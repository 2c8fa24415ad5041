//! The order state machine. Statuses are ranked; a payment signal moves an order
//! only to a higher rank, so late, repeated or reordered webhooks can never move
//! it backwards, and the final status depends only on *which* signals arrived,
//! not on their order. A refund that arrives before the payment is remembered
//! (`refund_pending`) and applied when the payment lands.
//!
//! | status                     | rank | reached by                                   |
//! |----------------------------|------|----------------------------------------------|
//! | `pending_payment`          | 0    | order created                                |
//! | `awaiting_offline_payment` | 1    | OXXO voucher issued                          |
//! | `payment_failed`           | 2    | payment failed                               |
//! | `cancelled`                | 3    | payment canceled, session or voucher expired |
//! | `paid`                     | 4    | payment succeeded (also after cancellation)  |
//! | `fulfilled`                | 5    | fulfilment done (from `paid` only)           |
//! | `needs_attention`          | 5    | amount mismatch or no stock (from `paid`)    |
//! | `refunded`                 | 6    | refund of a paid order (terminal)            |

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "order_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    AwaitingOfflinePayment,
    PaymentFailed,
    Cancelled,
    Paid,
    Fulfilled,
    NeedsAttention,
    Refunded,
}

impl OrderStatus {
    fn rank(self) -> u8 {
        match self {
            Self::PendingPayment => 0,
            Self::AwaitingOfflinePayment => 1,
            Self::PaymentFailed => 2,
            Self::Cancelled => 3,
            Self::Paid => 4,
            Self::Fulfilled | Self::NeedsAttention => 5,
            Self::Refunded => 6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::AwaitingOfflinePayment => "awaiting_offline_payment",
            Self::PaymentFailed => "payment_failed",
            Self::Cancelled => "cancelled",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::NeedsAttention => "needs_attention",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// Whether a payment has been taken for the order.
    pub fn is_paid(self) -> bool {
        self.rank() >= Self::Paid.rank()
    }
}

pub const ALL: [OrderStatus; 8] = [
    OrderStatus::PendingPayment,
    OrderStatus::AwaitingOfflinePayment,
    OrderStatus::PaymentFailed,
    OrderStatus::Cancelled,
    OrderStatus::Paid,
    OrderStatus::Fulfilled,
    OrderStatus::NeedsAttention,
    OrderStatus::Refunded,
];

/// What a provider event means for an order, independent of the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSignal {
    /// An OXXO voucher was issued (`requires_action` + `oxxo_display_details`).
    VoucherIssued,
    /// Informational (`processing`): never changes the status.
    Processing,
    Succeeded,
    Failed,
    /// Payment canceled or checkout session expired.
    Canceled,
    /// Our own durable timer at the voucher's `expires_after`.
    VoucherExpired,
    Refunded,
    /// Part of the payment was refunded: recorded, status and stock unchanged.
    PartiallyRefunded,
}

/// The part of an order the state machine owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderState {
    pub status: OrderStatus,
    pub refund_pending: bool,
}

/// What a signal does to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Move to this status.
    Apply(OrderStatus),
    /// The payment landed on an order already refunded at the provider: skip
    /// fulfilment, go straight to `refunded`.
    PaidButRefunded,
    /// Record a refund that arrived before its payment.
    RememberRefund,
    /// Record and do nothing (the reason says why).
    Ignore(&'static str),
}

impl OrderState {
    pub fn new(status: OrderStatus) -> Self {
        Self {
            status,
            refund_pending: false,
        }
    }

    /// Decides what `signal` does; pure.
    pub fn decide(self, signal: PaymentSignal) -> Decision {
        use OrderStatus::*;
        let target = match signal {
            PaymentSignal::Processing => return Decision::Ignore("informational"),
            PaymentSignal::PartiallyRefunded => return Decision::Ignore("partial refund: status and stock unchanged"),
            PaymentSignal::VoucherIssued => AwaitingOfflinePayment,
            PaymentSignal::Failed => PaymentFailed,
            PaymentSignal::Canceled | PaymentSignal::VoucherExpired => Cancelled,
            PaymentSignal::Succeeded if self.refund_pending && !self.status.is_paid() => {
                return Decision::PaidButRefunded
            }
            PaymentSignal::Succeeded => Paid,
            PaymentSignal::Refunded if !self.status.is_paid() => {
                return if self.refund_pending {
                    Decision::Ignore("duplicate refund before payment")
                } else {
                    Decision::RememberRefund
                };
            }
            PaymentSignal::Refunded => Refunded,
        };
        if target == self.status {
            Decision::Ignore("duplicate")
        } else if target.rank() <= self.status.rank() {
            Decision::Ignore("would move the order backwards")
        } else {
            Decision::Apply(target)
        }
    }

    /// The state after `decision` (the fulfilment outcome of `Paid` is separate).
    pub fn after(self, decision: Decision) -> Self {
        match decision {
            Decision::Apply(status) => Self { status, ..self },
            Decision::PaidButRefunded => Self {
                status: OrderStatus::Refunded,
                refund_pending: false,
            },
            Decision::RememberRefund => Self {
                refund_pending: true,
                ..self
            },
            Decision::Ignore(_) => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderStatus::*, *};
    use PaymentSignal as P;

    /// Applies signals as the workflow does: a payment that lands is fulfilled at once.
    fn run(signals: &[PaymentSignal]) -> OrderState {
        let mut state = OrderState::new(PendingPayment);
        for s in signals {
            state = state.after(state.decide(*s));
            if state.status == Paid {
                state = state.after(Decision::Apply(Fulfilled));
            }
        }
        state
    }

    fn permutations(items: &[PaymentSignal]) -> Vec<Vec<PaymentSignal>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = vec![];
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first);
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn every_permutation_of_realistic_sequences_ends_in_the_same_state() {
        let cases: &[(&str, &[PaymentSignal], OrderStatus)] = &[
            ("card", &[P::Processing, P::Succeeded, P::Succeeded], Fulfilled),
            ("card after a failed try", &[P::Failed, P::Processing, P::Succeeded, P::Failed], Fulfilled),
            ("oxxo paid", &[P::VoucherIssued, P::Processing, P::Succeeded, P::VoucherIssued], Fulfilled),
            ("oxxo paid after expiry", &[P::VoucherIssued, P::VoucherExpired, P::Processing, P::Succeeded], Fulfilled),
            ("oxxo unpaid", &[P::VoucherIssued, P::VoucherExpired, P::Processing, P::Failed, P::Failed], Cancelled),
            ("card declined", &[P::Processing, P::Failed, P::Failed], PaymentFailed),
            ("session expired", &[P::Canceled, P::Canceled, P::Processing], Cancelled),
            ("refund", &[P::Succeeded, P::Processing, P::Refunded, P::Refunded], Refunded),
            ("partial refund", &[P::Succeeded, P::PartiallyRefunded, P::PartiallyRefunded], Fulfilled),
            ("oxxo refund", &[P::VoucherIssued, P::Succeeded, P::Refunded, P::VoucherExpired], Refunded),
        ];
        for (name, signals, expected) in cases {
            let all = permutations(signals);
            for p in &all {
                assert_eq!(run(p).status, *expected, "{name}: {p:?}");
            }
        }
    }

    #[test]
    fn a_paid_or_refunded_order_never_moves_backwards() {
        for from in [Paid, Fulfilled, NeedsAttention, Refunded] {
            for s in [P::VoucherIssued, P::Processing, P::Failed, P::Canceled, P::VoucherExpired, P::Succeeded] {
                assert!(matches!(OrderState::new(from).decide(s), Decision::Ignore(_)), "{from:?} on {s:?}");
            }
        }
        assert!(matches!(OrderState::new(Refunded).decide(P::Refunded), Decision::Ignore(_)));
    }

    #[test]
    fn a_success_after_cancellation_still_pays() {
        assert_eq!(OrderState::new(Cancelled).decide(P::Succeeded), Decision::Apply(Paid));
    }

    #[test]
    fn a_refund_before_its_payment_is_remembered_and_applied_on_payment() {
        let s = OrderState::new(AwaitingOfflinePayment);
        assert_eq!(s.decide(P::Refunded), Decision::RememberRefund);
        let s = s.after(Decision::RememberRefund);
        assert_eq!(s.decide(P::Succeeded), Decision::PaidButRefunded);
        assert_eq!(s.after(Decision::PaidButRefunded).status, Refunded);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }
}
