//! The status of the backups: the report of Mail-in-a-Box's
//! `backup_status()` and the full-versus-incremental rule (`report`), with
//! the date arithmetic of its Python (`pytime`).

pub mod history;
pub mod metrics;
pub mod publish;
pub mod pytime;
pub mod report;
