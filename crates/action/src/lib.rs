//! Actions: fail2ban's action commands per ticket, run safely, with timeouts and a ban
//! queue.
//!
//! - [`CommandAction`] is an `action.d/*.conf` action as `rampart_config` read it. Its
//!   commands are resolved in two steps: the action's own properties (recursive,
//!   `name?family=inet6` first, cached per command and family), then the ticket's
//!   values in one pass that never re-reads what it inserted.
//! - **Attacker text is data.** A ticket value holding any shell-special character
//!   (matches, `<F-USER>`, a raw `<F-ID>`, a reverse DNS name) is never pasted into the
//!   script: the tag becomes `${f2bV_name}` and the value is a positional parameter of
//!   `sh -c`, as fail2ban 1.0 does. Plain values (addresses, numbers) are inlined.
//! - [`Executor`] runs `/bin/sh -c` (optionally behind a prefix such as
//!   `ip netns exec NS`) in a process group of its own, captures the output, and on
//!   timeout sends SIGTERM to the group, then SIGKILL.
//! - The state machine of fail2ban 1.0: start on demand per family, `actioncheck` and
//!   `actionrepair` after a failed ban or unban and one retry, `actionflush` or
//!   unban per ticket, `norestored`.
//! - [`BanQueue`] puts a worker thread of the jail's own in front of the actions, one
//!   that exists only while there is work: the server pushes [`Job`]s and returns at
//!   once; runs of queued bans reach each [`JailAction`] as one batch, so a native
//!   backend can apply them together.
//! - Nothing is logged here: everything worth reporting is an [`Event`] sent to the
//!   server's [`EventSink`]. Values that need the store or DNS (`<ipmatches>`,
//!   `<ip-host>`, …) come from the server's [`TagSource`], only when a command uses
//!   them.

mod command;
mod error;
mod event;
mod exec;
mod queue;
mod subst;
mod ticket;

pub use command::{ActionContext, CommandAction, Repair};
pub use error::ActionError;
pub use event::{Event, EventKind, EventSink, Level, channel_events, discard_events};
pub use exec::{Executor, Exit, Outcome, ShellScript, SpawnError};
pub use queue::{BanQueue, IDLE_END, JailAction, Job, QueueClosed, QueueStarter};
pub use subst::SubstError;
pub use ticket::{Family, Hostnames, NoLookups, TagSource, Ticket};
