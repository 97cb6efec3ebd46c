//! Failure counting and ban decisions: pure state, no IO, no clock of its own.
