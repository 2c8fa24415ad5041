//! Relevo: a durable-workflow engine for webhook-driven integrations.

pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod engine;
pub mod http;
pub mod ingest;
pub mod mailer;
pub mod outbound;
pub mod providers;
pub mod sealing;
pub mod startup;
pub mod telemetry;
#[path = "../workflows/mod.rs"]
pub mod workflows;
