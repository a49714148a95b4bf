//! The `call.incoming` hook of a call (see [`crate::hooks`]).
//!
//! ```text
//! INVITE accepted -> the hook is asked at once (its own task, its own deadline)
//! ACK, media up   -> answer in: the flow starts with the answer's data as variables
//!                    still pending: the flow waits for it (at most the deadline)
//! answer: data + `priority` -> the call's variables (the agent's offered-call data);
//!         skills -> the WaitingCall's extra requirements when the call enqueues;
//!         queue  -> the call goes straight to that queue instead of running its flow
//! ```
//!
//! The hook task always answers within the hook's deadline (`None` on no instance,
//! error or timeout: the call goes on unchanged), so a flow never waits longer.

use super::Call;
use crate::acd::Requirement;
use crate::hooks::{IncomingAnswer, IncomingCall};
use crate::ivr::Variables;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{debug, info};

/// Where the call's `call.incoming` hook is.
#[derive(Debug, Default)]
pub(super) enum IncomingHook {
    /// Not configured (or not asked yet).
    #[default]
    Off,
    /// Asked; the answer comes on the receiver.
    Pending(oneshot::Receiver<Option<IncomingAnswer>>),
    /// Answered (`None`: no usable answer in time).
    Done(Option<IncomingAnswer>),
}

/// The hook's answer once it comes (pending forever when none is awaited).
pub(super) async fn next_answer(hook: &mut IncomingHook) -> Option<IncomingAnswer> {
    match hook {
        IncomingHook::Pending(rx) => rx.await.ok().flatten(),
        _ => std::future::pending().await,
    }
}

impl Call {
    /// Asks the `call.incoming` hook about this call (when configured), without waiting.
    pub(super) fn ask_incoming_hook(&mut self) {
        let Some(hooks) = self.ctx.hooks.clone().filter(|h| h.has_call_incoming()) else {
            return;
        };
        let (caller_number, caller_name) = self.caller();
        let call = IncomingCall {
            call_id: self.call_id.clone(),
            caller_number,
            caller_name,
            called_number: self.number.clone().unwrap_or_default(),
            variables: Variables::new(),
        };
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(hooks.call_incoming(call).await);
        });
        self.incoming_hook = IncomingHook::Pending(rx);
    }

    /// Whether the flow must wait for the hook's answer.
    pub(super) fn incoming_hook_pending(&self) -> bool {
        matches!(self.incoming_hook, IncomingHook::Pending(_))
    }

    /// The hook answered (or gave up): a flow waiting for it starts now.
    pub(super) fn on_incoming_hook(&mut self, now: Instant, answer: Option<IncomingAnswer>) {
        match &answer {
            Some(a) => info!(
                data = a.data.len(),
                priority = ?a.priority,
                skills = a.skills.len(),
                queue = ?a.queue,
                "call.incoming hook answered"
            ),
            None => debug!("call.incoming hook: no answer, the call goes on unchanged"),
        }
        self.incoming_hook = IncomingHook::Done(answer);
        if self.app_waits_for_hook {
            self.app_waits_for_hook = false;
            self.start_app(now);
        }
    }

    /// The hook's answer, if one came.
    fn incoming_answer(&self) -> Option<&IncomingAnswer> {
        match &self.incoming_hook {
            IncomingHook::Done(Some(a)) => Some(a),
            _ => None,
        }
    }

    /// The call's first variables: the hook's data and priority.
    pub(super) fn hook_variables(&self) -> Variables {
        let mut vars = Variables::new();
        if let Some(a) = self.incoming_answer() {
            a.apply_to(&mut vars);
        }
        vars
    }

    /// The queue the hook chose, when the ACD has it.
    pub(super) fn hook_queue(&self) -> Option<String> {
        let q = self.incoming_answer()?.queue.as_ref()?;
        let known = self
            .ctx
            .config
            .acd
            .as_ref()
            .is_some_and(|a| a.queue(q).is_some());
        if !known {
            tracing::warn!(queue = %q, "call.incoming hook named an unknown queue: ignored");
            return None;
        }
        Some(q.clone())
    }

    /// Extra required skills from the hook, for the call's place in a queue.
    pub(super) fn hook_skills(&self) -> Vec<Requirement> {
        self.incoming_answer()
            .map(|a| a.skills.clone())
            .unwrap_or_default()
    }
}
