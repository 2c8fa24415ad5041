//! The states a run and an attempt can be in, as stored by the engine.

use serde::{Deserialize, Serialize};

/// A run's lifecycle state: the Postgres enum `engine.run_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "engine.run_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Sleeping,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Running,
        Self::Sleeping,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The label in `engine.run_status` (and in the API).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Sleeping => "sleeping",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the run still has work ahead (the partial indexes on
    /// `engine.runs` cover exactly these statuses).
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Sleeping)
    }

    /// Whether the run is finished: only an ops retry moves it again.
    pub const fn is_terminal(self) -> bool {
        !self.is_active()
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt ended, as stored in `engine.run_attempts.outcome` (text:
/// the SQL of `engine.claim_run` and shutdown also write `crashed` and
/// `released`, which Rust never passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Succeeded,
    Failed,
    Retry,
    RateLimited,
    Sleeping,
    LostLease,
}

impl AttemptOutcome {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Retry => "retry",
            Self::RateLimited => "rate_limited",
            Self::Sleeping => "sleeping",
            Self::LostLease => "lost_lease",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus;

    #[test]
    fn run_status_labels_are_the_serde_and_postgres_labels() {
        for status in RunStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(status.to_string(), status.as_str());
        }
        let active: Vec<_> = RunStatus::ALL.into_iter().filter(|s| s.is_active()).collect();
        assert_eq!(active, [RunStatus::Pending, RunStatus::Running, RunStatus::Sleeping]);
    }
}
