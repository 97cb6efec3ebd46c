use crate::subst::SubstError;

/// Why an action could not be built or a job of it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// `name.py[...]` actions need Python; rampart runs command actions only.
    #[error("action {action}: Python actions are not supported ({file})")]
    Unsupported { action: String, file: String },
    /// `timeout` is not a time value.
    #[error("action {action}: invalid timeout {value:?}: {reason}")]
    Timeout {
        action: String,
        value: String,
        reason: String,
    },
    /// The properties cannot be substituted into a command.
    #[error("action {action}: cannot build {command}: {source}")]
    Substitution {
        action: String,
        command: String,
        #[source]
        source: SubstError,
    },
    /// A command failed (its output went to the event sink).
    #[error("action {action}: {what} failed: {detail}")]
    Failed {
        action: String,
        what: String,
        detail: String,
    },
}
