//! One campaign's state machine: contacts, attempts, retries, dispositions, figures.
//!
//! Contract (sans-IO; time is an input, `now: SystemTime`, wall clock):
//! - inputs: [`Campaign::load_contacts`], [`Campaign::start`] / [`Campaign::pause`] /
//!   [`Campaign::resume`] / [`Campaign::stop`], [`Campaign::handle_agents`] (a snapshot
//!   of the queue's agents from the ACD) or [`Campaign::handle_agent`] (one agent),
//!   [`Campaign::handle_settled`] (a dial in progress needs no agent any more: connected,
//!   or a machine), [`Campaign::handle_abandoning`] (a person left without an agent,
//!   before the call ends), [`Campaign::handle_result`] (how a dial ended),
//!   [`Campaign::handle_disposition`] (the agent's wrap-up),
//!   [`Campaign::handle_false_positive`], and for preview
//!   campaigns [`Campaign::handle_preview_accept`] / [`Campaign::handle_preview_skip`];
//! - outputs: [`Campaign::poll_dial`] (the next call to place, until `None`),
//!   [`Campaign::poll_preview`] (preview: a contact to show to a ready agent),
//!   [`Campaign::poll_event`] (figures, finished contacts), [`Campaign::poll_timeout`]
//!   (when to poll again), [`Campaign::figures`].
//!
//! A driver (one tokio task for the dialer) calls `poll_dial` after every input and at
//! `poll_timeout`, places each [`DialRequest`] through the trunk (ringing at least
//! `ring_timeout`, which is never under 15 s), runs AMD on the answer, connects a
//! person to the reserved agent (preview, progressive) or to the campaign's queue
//! (predictive: if no agent takes the call within 2 s of the greeting, it plays the
//! safe-harbor prompt and reports [`CallResult::Abandoned`]), and reports the result.
//! AMD `unknown` is routed like a person. Contacts are checked just before each dial:
//! the do-not-call list (→ final `dnc`), the calling window in the contact's zones (→
//! rescheduled to the next opening, counted as `outside_window`), and the 72-hour rule.
//!
//! The 72-hour rule: a contact whose call was abandoned (or whose attempt was
//! interrupted by a restart, since it may have been) is not dialed again within 72 h,
//! unless an agent is guaranteed for the call — preview and progressive campaigns
//! reserve the agent before dialing, so for them the `retry.abandoned` delay applies as
//! configured (and an abandon can then only come from a failure on the way to that
//! agent).
//!
//! Retries: after a busy, no-answer, failed, machine (hung up) or abandoned outcome the
//! contact is dialed again after that outcome's delay, at most `max` more times for that
//! outcome and `max_attempts` dials in all; then it is final `exhausted:<outcome>`. A
//! person reached is final `reached`; a message left on a machine is `message_left`.
//!
//! Durability: every write goes to the store; attempt outcomes, dispositions, run
//! state changes and loaded contacts are flushed before the call returns. The store is
//! synchronous (sled): the driver should call from a task that may block briefly.
//!
//! Figures: `answered` = human + machine + abandoned; the abandoned rate is abandoned /
//! (human + abandoned) in the rolling window (AMD false positives count as abandoned,
//! at the time they are reported). [`CampaignFigures::today`] holds the same counts
//! (dialed, answered, human, machine, abandoned) for the current local day in the
//! campaign's zone: they start again at its midnight and are stored with the
//! campaign's state, so a restart keeps them.

mod record;
#[cfg(test)]
mod tests;

pub use record::{
    AttemptRecord, ContactRecord, DayFigures, FinalState, Outcome, RunState, ATTEMPTS_TREE,
    CAMPAIGNS_TREE, CONTACTS_TREE,
};

use super::amd::{AmdOutcome, AmdParams};
use super::config::{CampaignConfig, RetryRule, ABANDON_REDIAL};
use super::contacts::Contact;
use super::dnc::DncList;
use super::pacing::{DialMode, Pacer, PacingInput, Resolution};
use super::phone::{Country, E164};
use crate::ivr::Variables;
use crate::store::{Store, StoreError};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A contact's id within its campaign.
pub type ContactId = u64;
/// An attempt's (dial's) id within its campaign.
pub type AttemptId = u64;

/// How often a running predictive campaign wants to be polled (pacing moves with time).
pub const PACING_TICK: Duration = Duration::from_secs(1);

/// Errors of a campaign.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// A command that the current state does not allow.
    #[error("campaign {campaign}: cannot {command} while {state}")]
    InvalidTransition {
        /// Campaign name.
        campaign: String,
        /// `start`, `pause`, `resume`, `stop`.
        command: &'static str,
        /// Current state.
        state: &'static str,
    },
    /// An attempt that is not in progress (or unknown, for a disposition).
    #[error("campaign {campaign}: no attempt {attempt} {what}")]
    UnknownAttempt {
        /// Campaign name.
        campaign: String,
        /// Attempt id.
        attempt: AttemptId,
        /// `in progress`, `offered`, `stored`.
        what: &'static str,
    },
    /// A false-positive report for an attempt the AMD did not take for a machine.
    #[error("campaign {campaign}: attempt {attempt} was not answered by a machine (outcome: {outcome}): it cannot be an AMD false positive")]
    NotMachine {
        /// Campaign name.
        campaign: String,
        /// Attempt id.
        attempt: AttemptId,
        /// Its outcome (`human`, `busy`, `in progress` ...).
        outcome: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An agent of the campaign's queue, as the ACD sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// Agent id.
    pub id: String,
    /// Availability.
    pub availability: Availability,
}

/// An agent's availability for campaign calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Ready for a call.
    Ready,
    /// On a call or in wrap-up.
    Busy,
    /// Not ready or logged out.
    Away,
}

/// A call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    /// Campaign name.
    pub campaign: String,
    /// Attempt id (report the result with it).
    pub attempt: AttemptId,
    /// Contact id.
    pub contact: ContactId,
    /// Number to dial.
    pub number: E164,
    /// Caller id to present.
    pub caller_id: E164,
    /// Trunk to dial through.
    pub trunk: String,
    /// How long to let it ring (at least 15 s).
    pub ring_timeout: Duration,
    /// The agent reserved for this call (preview, progressive).
    pub agent: Option<String>,
    /// AMD parameters (`None`: no AMD, an answer is a person).
    pub amd: Option<AmdParams>,
    /// Variables shown to the agent: the contact's CSV columns plus `campaign`,
    /// `contact_name`, `contact_number` and `script`.
    pub variables: Variables,
}

/// A contact offered to a preview agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewOffer {
    /// Attempt id the dial will have if the agent accepts.
    pub attempt: AttemptId,
    /// Agent the contact is shown to.
    pub agent: String,
    /// Contact id.
    pub contact: ContactId,
    /// Number.
    pub number: E164,
    /// Variables as in [`DialRequest::variables`].
    pub variables: Variables,
}

/// How a dial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// A person (AMD human or unknown) was connected to an agent.
    Connected {
        /// Agent id.
        agent: String,
        /// AMD verdict (`None` without AMD).
        amd: Option<AmdOutcome>,
    },
    /// A person answered and no agent took the call within 2 s (safe-harbor played).
    Abandoned {
        /// AMD verdict.
        amd: Option<AmdOutcome>,
    },
    /// A machine answered.
    Machine {
        /// The machine message was played after the beep.
        message_left: bool,
    },
    /// Agentless: the message or flow played to a person.
    Played {
        /// AMD verdict.
        amd: Option<AmdOutcome>,
    },
    /// Busy.
    Busy,
    /// Rang out.
    NoAnswer,
    /// Failed before an answer.
    Failed {
        /// Why (SIP status, trunk error).
        reason: String,
    },
}

/// Campaign figures (for the monitor, reports and the event bus).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignFigures {
    /// Campaign name.
    pub campaign: String,
    /// Run state.
    pub state: RunState,
    /// Dials placed.
    pub dialed: u64,
    /// Dials in progress.
    pub in_flight: u64,
    /// Answered: human + machine + abandoned.
    pub answered: u64,
    /// Persons connected to an agent (or who heard the agentless message).
    pub human: u64,
    /// Machines.
    pub machine: u64,
    /// Busy.
    pub busy: u64,
    /// Rang out.
    pub no_answer: u64,
    /// Failed.
    pub failed: u64,
    /// Abandoned (AMD false positives included).
    pub abandoned: u64,
    /// Persons taken for machines.
    pub amd_false_positives: u64,
    /// Contacts skipped for the do-not-call list.
    pub dnc_skipped: u64,
    /// Dials put off because the contact's window was closed.
    pub outside_window: u64,
    /// Abandoned rate in the rolling window (0..1).
    pub abandon_rate: f64,
    /// Contacts.
    pub contacts: u64,
    /// Contacts not final yet.
    pub contacts_left: u64,
    /// Today's figures (the local day in the campaign's zone; zero after its midnight).
    pub today: DayFigures,
}

/// What a campaign reports.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignEvent {
    /// Figures changed (coalesced: the latest figures).
    Figures(Box<CampaignFigures>),
    /// A contact reached its final state.
    ContactDone {
        /// Contact id.
        contact: ContactId,
        /// Final state.
        state: FinalState,
    },
}

/// The result of [`Campaign::load_contacts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Contacts added.
    pub added: u64,
    /// Index (in the given list) and number of contacts already in the campaign.
    pub duplicates: Vec<(usize, E164)>,
}

/// A contact in memory.
#[derive(Debug, Clone)]
struct Entry {
    rec: ContactRecord,
    number: E164,
    zones: Vec<TimeZone>,
}

/// A dial in progress.
#[derive(Debug, Clone)]
struct InFlight {
    rec: AttemptRecord,
    /// No agent is wanted for it any more (connected to its agent, or a machine): the
    /// pacer no longer counts it as a call that may still bring a person.
    settled: bool,
    /// Its abandon is in the pacing window already ([`Campaign::handle_abandoning`]).
    abandon_counted: bool,
}

/// One campaign.
pub struct Campaign {
    cfg: Arc<CampaignConfig>,
    store: Arc<dyn Store>,
    state: RunState,
    next_contact: u64,
    next_attempt: u64,
    contacts: HashMap<ContactId, Entry>,
    by_number: HashMap<E164, ContactId>,
    /// Pending contacts by (due ms, id).
    schedule: BTreeSet<(u64, ContactId)>,
    in_flight: HashMap<AttemptId, InFlight>,
    /// Preview offers not answered yet: attempt → (contact, agent).
    offers: HashMap<AttemptId, (ContactId, String)>,
    /// Accepted previews waiting for `poll_dial`.
    accepted: VecDeque<AttemptId>,
    /// Agents: id → availability.
    agents: HashMap<String, Availability>,
    /// Agents busy since (ms), to measure handle times.
    busy_since: HashMap<String, u64>,
    /// Agents reserved for a dial or an offer.
    reserved: HashMap<String, AttemptId>,
    /// Preview offers not decided yet: attempt → deadline (ms).
    deadlines: HashMap<AttemptId, u64>,
    /// Progressive dials are claimed first ([`Campaign::set_claim_first`]).
    claim_first: bool,
    pacer: Pacer,
    figures: CampaignFigures,
    figures_dirty: bool,
    events: VecDeque<CampaignEvent>,
    last_now: u64,
    /// Today's figures, kept with the campaign's stored state.
    today: DayFigures,
    /// The bounds of `today`'s local day (Unix ms, end exclusive; empty until known).
    day_bounds: (u64, u64),
}

impl std::fmt::Debug for Campaign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaign")
            .field("name", &self.cfg.name)
            .field("state", &self.state)
            .field("contacts", &self.contacts.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

/// Unix milliseconds of a wall-clock time (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64).unwrap_or(Timestamp::MAX)
}

fn entry(rec: ContactRecord, campaign_zone: &TimeZone) -> Option<Entry> {
    let number = E164::from_e164(&rec.number).ok()?;
    let contact = Contact {
        number: number.clone(),
        name: String::new(),
        country: rec.country.as_deref().and_then(Country::by_alpha2),
        timezone: rec.timezone.clone(),
        variables: Variables::new(),
    };
    Some(Entry {
        zones: contact.zones(campaign_zone),
        number,
        rec,
    })
}

impl Campaign {
    /// Opens a campaign: its stored state, contacts and attempts if any (an attempt
    /// found without outcome is marked interrupted and its contact falls under the
    /// 72-hour rule), else a new idle campaign.
    pub fn open(
        cfg: Arc<CampaignConfig>,
        store: Arc<dyn Store>,
        now: SystemTime,
    ) -> Result<Campaign, CampaignError> {
        let now_ms = unix_ms(now);
        let name = cfg.name.clone();
        let stored: Option<record::CampaignRecord> = store
            .get(CAMPAIGNS_TREE, name.as_bytes())?
            .map(|v| record::decode(CAMPAIGNS_TREE, &v))
            .transpose()?;
        let mut c = Campaign {
            pacer: Pacer::new(cfg.pacing),
            figures: CampaignFigures {
                campaign: name.clone(),
                state: RunState::Idle,
                dialed: 0,
                in_flight: 0,
                answered: 0,
                human: 0,
                machine: 0,
                busy: 0,
                no_answer: 0,
                failed: 0,
                abandoned: 0,
                amd_false_positives: 0,
                dnc_skipped: 0,
                outside_window: 0,
                abandon_rate: 0.0,
                contacts: 0,
                contacts_left: 0,
                today: DayFigures::default(),
            },
            cfg,
            store,
            state: RunState::Idle,
            next_contact: 0,
            next_attempt: 0,
            contacts: HashMap::new(),
            by_number: HashMap::new(),
            schedule: BTreeSet::new(),
            in_flight: HashMap::new(),
            offers: HashMap::new(),
            accepted: VecDeque::new(),
            agents: HashMap::new(),
            busy_since: HashMap::new(),
            reserved: HashMap::new(),
            deadlines: HashMap::new(),
            claim_first: false,
            figures_dirty: true,
            events: VecDeque::new(),
            last_now: now_ms,
            today: DayFigures::default(),
            day_bounds: (0, 0),
        };
        if let Some(s) = stored {
            c.state = s.state;
            c.next_contact = s.next_contact;
            c.next_attempt = s.next_attempt;
            c.today = s.today;
        }
        c.roll_day(now_ms);
        for rec in record::scan::<ContactRecord>(&*c.store, CONTACTS_TREE, &name)? {
            let Some(e) = entry(rec, &c.cfg.timezone) else {
                continue;
            };
            c.figures.contacts += 1;
            if e.rec.done.is_none() {
                c.figures.contacts_left += 1;
                c.schedule.insert((e.rec.next_at_ms.unwrap_or(0), e.rec.id));
            } else if e.rec.done == Some(FinalState::Dnc) {
                c.figures.dnc_skipped += 1;
            }
            c.next_contact = c.next_contact.max(e.rec.id + 1);
            c.by_number.insert(e.number.clone(), e.rec.id);
            c.contacts.insert(e.rec.id, e);
        }
        let window_start = now_ms.saturating_sub(c.cfg.pacing.window.as_millis() as u64);
        for mut a in record::scan::<AttemptRecord>(&*c.store, ATTEMPTS_TREE, &name)? {
            c.next_attempt = c.next_attempt.max(a.id + 1);
            c.figures.dialed += 1;
            if a.outcome.is_none() {
                a.outcome = Some(Outcome::Interrupted);
                a.ended_ms = Some(now_ms);
                record::put(&*c.store, ATTEMPTS_TREE, &record::key(&name, a.id), &a)?;
                if let Some(e) = c.contacts.get_mut(&a.contact) {
                    e.rec.last_abandon_ms = Some(a.dialed_ms);
                    if e.rec.done.is_none() {
                        c.schedule
                            .remove(&(e.rec.next_at_ms.unwrap_or(0), e.rec.id));
                        let due = now_ms + c.cfg.retries.failed.delay.as_millis() as u64;
                        e.rec.next_at_ms = Some(due);
                        c.schedule.insert((due, e.rec.id));
                    }
                    record::put(
                        &*c.store,
                        CONTACTS_TREE,
                        &record::key(&name, e.rec.id),
                        &e.rec,
                    )?;
                }
            }
            let ended = a.ended_ms.unwrap_or(a.dialed_ms);
            c.count(a.outcome, a.false_positive);
            let in_window = ended >= window_start;
            match a.outcome {
                Some(Outcome::Human) if in_window => c.pacer.restore(ended, false),
                Some(Outcome::Abandoned) if in_window => c.pacer.restore(ended, true),
                _ => {}
            }
            let reported = a.false_positive_ms.unwrap_or(ended);
            if a.false_positive && reported >= window_start {
                c.pacer.restore(reported, true);
            }
        }
        c.store.flush()?;
        Ok(c)
    }

    fn count(&mut self, outcome: Option<Outcome>, false_positive: bool) {
        let f = &mut self.figures;
        match outcome {
            Some(Outcome::Human) => {
                f.human += 1;
                f.answered += 1;
            }
            Some(Outcome::Machine) => {
                f.machine += 1;
                f.answered += 1;
            }
            Some(Outcome::Abandoned) => {
                f.abandoned += 1;
                f.answered += 1;
            }
            Some(Outcome::Busy) => f.busy += 1,
            Some(Outcome::NoAnswer) => f.no_answer += 1,
            Some(Outcome::Failed) => f.failed += 1,
            Some(Outcome::Interrupted) | None => {}
        }
        if false_positive {
            f.amd_false_positives += 1;
            f.abandoned += 1;
        }
        self.figures_dirty = true;
    }

    /// The local date of `ms` in the campaign's zone, `YYYY-MM-DD`.
    fn local_day(&self, ms: u64) -> String {
        timestamp(ms)
            .to_zoned(self.cfg.timezone.clone())
            .date()
            .to_string()
    }

    /// The local day of `ms` in the campaign's zone: its date and its bounds (Unix ms,
    /// from its first instant to the next day's, which daylight saving may make 23 or
    /// 25 hours apart).
    fn day_at(&self, ms: u64) -> (String, u64, u64) {
        let tz = &self.cfg.timezone;
        let z = timestamp(ms).to_zoned(tz.clone());
        let unix = |t: Timestamp| t.as_millisecond().max(0) as u64;
        let start = z.start_of_day().map(|s| unix(s.timestamp())).unwrap_or(ms);
        let end = z
            .date()
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned(tz.clone()).ok())
            .and_then(|n| n.start_of_day().ok())
            .map(|e| unix(e.timestamp()))
            .unwrap_or(u64::MAX)
            .max(ms + 1);
        (z.date().to_string(), start.min(ms), end)
    }

    /// Starts a new day's figures when `now_ms` is past the campaign's local midnight
    /// (cheap while it is not: the day's bounds are kept).
    fn roll_day(&mut self, now_ms: u64) {
        let (start, end) = self.day_bounds;
        if (start..end).contains(&now_ms) {
            return;
        }
        let (day, start, end) = self.day_at(now_ms);
        self.day_bounds = (start, end);
        if self.today.day != day {
            self.today = DayFigures {
                day,
                ..DayFigures::default()
            };
            self.figures_dirty = true;
        }
    }

    /// Counts an outcome (or a false positive) into today's figures at `now_ms`.
    fn count_today(&mut self, now_ms: u64, outcome: Option<Outcome>, false_positive: bool) {
        self.roll_day(now_ms);
        let t = &mut self.today;
        match outcome {
            Some(Outcome::Human) => t.human += 1,
            Some(Outcome::Machine) => t.machine += 1,
            Some(Outcome::Abandoned) => t.abandoned += 1,
            _ => {}
        }
        if matches!(
            outcome,
            Some(Outcome::Human | Outcome::Machine | Outcome::Abandoned)
        ) {
            t.answered += 1;
        }
        if false_positive {
            t.abandoned += 1;
        }
        self.figures_dirty = true;
    }

    /// The campaign's config.
    pub fn config(&self) -> &CampaignConfig {
        &self.cfg
    }

    /// The run state.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// Current figures.
    pub fn figures(&self) -> CampaignFigures {
        let mut f = self.figures.clone();
        f.state = self.state;
        f.in_flight = self.in_flight.len() as u64;
        f.abandon_rate = self.pacer.window().rate(self.last_now);
        let (start, end) = self.day_bounds;
        f.today = if (start..end).contains(&self.last_now) {
            self.today.clone()
        } else {
            // Past midnight with no count since: a new day, nothing counted yet.
            DayFigures {
                day: self.local_day(self.last_now),
                ..DayFigures::default()
            }
        };
        f
    }

    /// A contact's stored record.
    pub fn contact(&self, id: ContactId) -> Option<&ContactRecord> {
        self.contacts.get(&id).map(|e| &e.rec)
    }

    /// Every attempt of the campaign, from the store, in id order.
    pub fn attempts(&self) -> Result<Vec<AttemptRecord>, CampaignError> {
        Ok(record::scan(&*self.store, ATTEMPTS_TREE, &self.cfg.name)?)
    }

    /// The newest `limit` attempts (of one contact, when given), newest first.
    pub fn recent_attempts(
        &self,
        contact: Option<ContactId>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, CampaignError> {
        let mut all = self.attempts()?;
        if let Some(c) = contact {
            all.retain(|a| a.contact == c);
        }
        let keep = all.len().saturating_sub(limit);
        all.drain(..keep);
        all.reverse();
        Ok(all)
    }

    fn put_state(&self) -> Result<(), StoreError> {
        let rec = record::CampaignRecord {
            state: self.state,
            next_contact: self.next_contact,
            next_attempt: self.next_attempt,
            today: self.today.clone(),
        };
        record::put(&*self.store, CAMPAIGNS_TREE, self.cfg.name.as_bytes(), &rec)
    }

    fn save_state(&self) -> Result<(), CampaignError> {
        self.put_state()?;
        self.store.flush()?;
        Ok(())
    }

    fn save_contact(&self, id: ContactId) -> Result<(), StoreError> {
        match self.contacts.get(&id) {
            Some(e) => record::put(
                &*self.store,
                CONTACTS_TREE,
                &record::key(&self.cfg.name, id),
                &e.rec,
            ),
            None => Ok(()),
        }
    }

    /// Adds contacts (duplicates of numbers already in the campaign are left out and
    /// listed); durable when it returns. They are due at once.
    pub fn load_contacts(
        &mut self,
        now: SystemTime,
        contacts: Vec<Contact>,
    ) -> Result<LoadReport, CampaignError> {
        let now_ms = unix_ms(now);
        let mut report = LoadReport::default();
        for (i, c) in contacts.into_iter().enumerate() {
            if self.by_number.contains_key(&c.number) {
                report.duplicates.push((i, c.number));
                continue;
            }
            let id = self.next_contact;
            self.next_contact += 1;
            let rec = ContactRecord {
                id,
                number: c.number.to_string(),
                name: c.name.clone(),
                country: c.country.map(|c| c.alpha2.to_string()),
                timezone: c.timezone.clone(),
                attempts: 0,
                outcomes: Default::default(),
                next_at_ms: Some(now_ms),
                last_abandon_ms: None,
                done: None,
                variables: c.variables.clone(),
            };
            let e = Entry {
                zones: c.zones(&self.cfg.timezone),
                number: c.number.clone(),
                rec,
            };
            self.by_number.insert(c.number, id);
            self.contacts.insert(id, e);
            self.schedule.insert((now_ms, id));
            self.save_contact(id)?;
            self.figures.contacts += 1;
            self.figures.contacts_left += 1;
            report.added += 1;
        }
        if self.state == RunState::Finished && report.added > 0 {
            self.state = RunState::Running;
        }
        self.figures_dirty = true;
        self.save_state()?;
        Ok(report)
    }

    fn transition(
        &mut self,
        command: &'static str,
        allowed: &[RunState],
        to: RunState,
    ) -> Result<RunState, CampaignError> {
        if !allowed.contains(&self.state) {
            return Err(CampaignError::InvalidTransition {
                campaign: self.cfg.name.clone(),
                command,
                state: self.state.as_str(),
            });
        }
        self.state = to;
        self.figures_dirty = true;
        self.save_state()?;
        Ok(to)
    }

    /// Starts dialing (from idle, stopped or finished).
    pub fn start(&mut self, now: SystemTime) -> Result<RunState, CampaignError> {
        self.last_now = unix_ms(now);
        self.transition(
            "start",
            &[RunState::Idle, RunState::Stopped, RunState::Finished],
            RunState::Running,
        )?;
        self.check_finished();
        Ok(self.state)
    }

    /// Stops new dials for a while; calls in progress go on.
    pub fn pause(&mut self, now: SystemTime) -> Result<RunState, CampaignError> {
        self.last_now = unix_ms(now);
        self.transition("pause", &[RunState::Running], RunState::Paused)
    }

    /// Dials again after a pause.
    pub fn resume(&mut self, now: SystemTime) -> Result<RunState, CampaignError> {
        self.last_now = unix_ms(now);
        self.transition("resume", &[RunState::Paused], RunState::Running)
    }

    /// Stops the campaign (calls in progress go on; offers are withdrawn).
    pub fn stop(&mut self, now: SystemTime) -> Result<RunState, CampaignError> {
        self.last_now = unix_ms(now);
        self.transition(
            "stop",
            &[RunState::Running, RunState::Paused],
            RunState::Stopped,
        )?;
        let withdrawn: Vec<AttemptId> = self
            .offers
            .keys()
            .copied()
            .chain(self.accepted.drain(..))
            .collect();
        for attempt in withdrawn {
            if let Some((contact, agent)) = self.offers.remove(&attempt) {
                self.deadlines.remove(&attempt);
                self.reserved.remove(&agent);
                self.reschedule(contact, self.last_now);
            }
        }
        Ok(self.state)
    }

    /// A snapshot of the queue's agents (agents not listed are away).
    pub fn handle_agents(&mut self, now: SystemTime, agents: &[AgentView]) {
        let listed: BTreeSet<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        let gone: Vec<String> = self
            .agents
            .keys()
            .filter(|a| !listed.contains(a.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.handle_agent(
                now,
                &AgentView {
                    id,
                    availability: Availability::Away,
                },
            );
        }
        for a in agents {
            self.handle_agent(now, a);
        }
    }

    /// One agent's availability changed.
    pub fn handle_agent(&mut self, now: SystemTime, agent: &AgentView) {
        let now_ms = unix_ms(now);
        self.last_now = now_ms;
        let before = self.agents.insert(agent.id.clone(), agent.availability);
        match agent.availability {
            Availability::Busy => {
                if before != Some(Availability::Busy) {
                    self.busy_since.insert(agent.id.clone(), now_ms);
                }
            }
            other => {
                if let Some(since) = self.busy_since.remove(&agent.id) {
                    self.pacer
                        .handle_call_handled(Duration::from_millis(now_ms.saturating_sub(since)));
                }
                if other == Availability::Away {
                    self.agents.remove(&agent.id);
                    // An offer to an agent who left goes back to the list.
                    if let Some(attempt) = self.reserved.get(&agent.id).copied() {
                        if let Some((contact, _)) = self.offers.remove(&attempt) {
                            self.deadlines.remove(&attempt);
                            self.reserved.remove(&agent.id);
                            self.accepted.retain(|a| *a != attempt);
                            self.reschedule(contact, now_ms);
                        }
                    }
                }
            }
        }
    }

    fn ready_unreserved(&self) -> impl Iterator<Item = &String> {
        self.agents
            .iter()
            .filter(|(id, a)| **a == Availability::Ready && !self.reserved.contains_key(*id))
            .map(|(id, _)| id)
    }

    fn reschedule(&mut self, contact: ContactId, due_ms: u64) {
        if let Some(e) = self.contacts.get_mut(&contact) {
            if let Some(old) = e.rec.next_at_ms {
                self.schedule.remove(&(old, contact));
            }
            e.rec.next_at_ms = Some(due_ms);
            if e.rec.done.is_none() {
                self.schedule.insert((due_ms, contact));
            }
        }
    }

    fn finish_contact(&mut self, contact: ContactId, state: FinalState) {
        if let Some(e) = self.contacts.get_mut(&contact) {
            if let Some(old) = e.rec.next_at_ms.take() {
                self.schedule.remove(&(old, contact));
            }
            if e.rec.done.is_none() {
                self.figures.contacts_left = self.figures.contacts_left.saturating_sub(1);
            }
            e.rec.done = Some(state);
            self.events
                .push_back(CampaignEvent::ContactDone { contact, state });
            self.figures_dirty = true;
        }
    }

    /// The next due contact that may be dialed now: DNC, window and the 72-hour rule
    /// are checked here; contacts that fail are finished or rescheduled.
    fn next_contact(
        &mut self,
        now_ms: u64,
        dnc: &DncList,
    ) -> Result<Option<ContactId>, CampaignError> {
        let now_ts = timestamp(now_ms);
        let guaranteed = self.cfg.mode.agent_guaranteed();
        while let Some(&(due, id)) = self.schedule.first() {
            if due > now_ms {
                return Ok(None);
            }
            self.schedule.remove(&(due, id));
            let Some(e) = self.contacts.get(&id) else {
                continue;
            };
            if e.rec.done.is_some() {
                continue;
            }
            if dnc.contains(&e.number) {
                self.figures.dnc_skipped += 1;
                self.finish_contact(id, FinalState::Dnc);
                self.save_contact(id)?;
                continue;
            }
            if !self.cfg.window.is_open(&e.zones, now_ts) {
                match self.cfg.window.next_open(&e.zones, now_ts) {
                    Some(t) => {
                        self.figures.outside_window += 1;
                        self.figures_dirty = true;
                        let at = (t.as_millisecond().max(0) as u64).max(now_ms + 1);
                        self.reschedule(id, at);
                    }
                    None => self.finish_contact(id, FinalState::NoWindow),
                }
                self.save_contact(id)?;
                continue;
            }
            if let Some(ab) = e.rec.last_abandon_ms {
                let until = ab + ABANDON_REDIAL.as_millis() as u64;
                if !guaranteed && until > now_ms {
                    self.reschedule(id, until);
                    self.save_contact(id)?;
                    continue;
                }
            }
            return Ok(Some(id));
        }
        Ok(None)
    }

    fn variables(&self, e: &Entry) -> Variables {
        let mut v = e.rec.variables.clone();
        v.insert("campaign".into(), self.cfg.name.clone());
        v.insert("contact_name".into(), e.rec.name.clone());
        v.insert("contact_number".into(), e.number.to_string());
        if !self.cfg.script.is_empty() {
            v.insert("script".into(), self.cfg.script.clone());
        }
        v
    }

    /// Progressive campaigns with `on`: a dial is first claimed like a preview offer
    /// ([`Campaign::poll_preview`] returns it, with no deadline), so the caller can hold
    /// the agent elsewhere (the ACD) before [`Campaign::handle_preview_accept`] lets
    /// [`Campaign::poll_dial`] place it; [`Campaign::handle_hold_refused`] undoes a
    /// claim. `poll_dial` then places only accepted claims.
    pub fn set_claim_first(&mut self, on: bool) {
        self.claim_first = on;
    }

    /// Whether the dial of this mode comes from accepted offers or claims.
    fn dials_offers(&self) -> bool {
        self.cfg.mode == DialMode::Preview
            || (self.cfg.mode == DialMode::Progressive && self.claim_first)
    }

    /// Preview: the next contact to show to a ready agent (that agent is reserved until
    /// [`Campaign::handle_preview_accept`], [`Campaign::handle_preview_skip`] or the
    /// offer's deadline, `preview_timeout_s`, see [`Campaign::poll_preview_timeout`]).
    /// Progressive with [`Campaign::set_claim_first`]: the next claimed dial.
    pub fn poll_preview(
        &mut self,
        now: SystemTime,
        dnc: &DncList,
    ) -> Result<Option<PreviewOffer>, CampaignError> {
        let now_ms = unix_ms(now);
        self.last_now = now_ms;
        if !self.dials_offers() || self.state != RunState::Running {
            return Ok(None);
        }
        let preview = self.cfg.mode == DialMode::Preview;
        if !preview && (self.in_flight.len() + self.offers.len()) as u32 >= self.cfg.lines {
            return Ok(None);
        }
        let Some(agent) = self.ready_unreserved().next().cloned() else {
            return Ok(None);
        };
        let Some(id) = self.next_contact(now_ms, dnc)? else {
            self.check_finished();
            return Ok(None);
        };
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        self.offers.insert(attempt, (id, agent.clone()));
        self.reserved.insert(agent.clone(), attempt);
        if preview {
            let deadline = now_ms + self.cfg.preview_timeout.as_millis() as u64;
            self.deadlines.insert(attempt, deadline);
        }
        let e = &self.contacts[&id];
        Ok(Some(PreviewOffer {
            attempt,
            agent,
            contact: id,
            number: e.number.clone(),
            variables: self.variables(e),
        }))
    }

    /// Preview: the agent starts the call; [`Campaign::poll_dial`] returns it next.
    /// Also accepts a claimed progressive dial ([`Campaign::set_claim_first`]).
    pub fn handle_preview_accept(&mut self, attempt: AttemptId) -> Result<(), CampaignError> {
        if !self.offers.contains_key(&attempt) || self.accepted.contains(&attempt) {
            return Err(self.unknown(attempt, "offered"));
        }
        self.deadlines.remove(&attempt);
        self.accepted.push_back(attempt);
        Ok(())
    }

    /// The agent an offer (or claim) not decided yet was made to.
    pub fn offer_agent(&self, attempt: AttemptId) -> Option<&str> {
        if self.accepted.contains(&attempt) {
            return None;
        }
        self.offers.get(&attempt).map(|(_, a)| a.as_str())
    }

    /// Whether an attempt is still offered, accepted or being dialed.
    pub fn is_live(&self, attempt: AttemptId) -> bool {
        self.offers.contains_key(&attempt) || self.in_flight.contains_key(&attempt)
    }

    /// Preview: an offer whose deadline passed at `now` counts as skipped (as
    /// [`Campaign::handle_preview_skip`]); returns its attempt and agent (call until
    /// `None`).
    pub fn poll_preview_timeout(
        &mut self,
        now: SystemTime,
    ) -> Result<Option<(AttemptId, String)>, CampaignError> {
        let now_ms = unix_ms(now);
        let Some(attempt) = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now_ms)
            .min_by_key(|(a, d)| (**d, **a))
            .map(|(a, _)| *a)
        else {
            return Ok(None);
        };
        let agent = self
            .offers
            .get(&attempt)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        self.deadlines.remove(&attempt);
        if self.offers.contains_key(&attempt) {
            self.handle_preview_skip(now, attempt)?;
        }
        Ok(Some((attempt, agent)))
    }

    /// The agent of an offer or claim could not be held (it is not ready any more, e.g.
    /// an inbound call reached it first): the offer is withdrawn without counting
    /// anything, its contact is due again at once, and the agent counts as busy until
    /// its next state change.
    pub fn handle_hold_refused(
        &mut self,
        now: SystemTime,
        attempt: AttemptId,
    ) -> Result<(), CampaignError> {
        let now_ms = unix_ms(now);
        self.last_now = now_ms;
        let Some((contact, agent)) = self.offers.remove(&attempt) else {
            return Err(self.unknown(attempt, "offered"));
        };
        self.deadlines.remove(&attempt);
        self.accepted.retain(|a| *a != attempt);
        if self.reserved.get(&agent) == Some(&attempt) {
            self.reserved.remove(&agent);
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            if *a == Availability::Ready {
                *a = Availability::Busy;
            }
        }
        self.reschedule(contact, now_ms);
        Ok(())
    }

    /// Preview: the agent skips the contact; it comes back after the no-answer delay
    /// (no attempt is counted) and the agent is free for another offer.
    pub fn handle_preview_skip(
        &mut self,
        now: SystemTime,
        attempt: AttemptId,
    ) -> Result<(), CampaignError> {
        let Some((contact, agent)) = self.offers.remove(&attempt) else {
            return Err(self.unknown(attempt, "offered"));
        };
        self.deadlines.remove(&attempt);
        self.accepted.retain(|a| *a != attempt);
        self.reserved.remove(&agent);
        let due = unix_ms(now) + self.cfg.retries.no_answer.delay.as_millis() as u64;
        self.reschedule(contact, due);
        self.save_contact(contact)?;
        Ok(())
    }

    fn unknown(&self, attempt: AttemptId, what: &'static str) -> CampaignError {
        CampaignError::UnknownAttempt {
            campaign: self.cfg.name.clone(),
            attempt,
            what,
        }
    }

    /// The next call to place now, if any (call until `None`).
    pub fn poll_dial(
        &mut self,
        now: SystemTime,
        dnc: &DncList,
    ) -> Result<Option<DialRequest>, CampaignError> {
        let now_ms = unix_ms(now);
        self.last_now = now_ms;
        // Past the local midnight: today's figures start again (and are published).
        self.roll_day(now_ms);
        if self.state != RunState::Running || self.in_flight.len() as u32 >= self.cfg.lines {
            return Ok(None);
        }
        let mode = if self.dials_offers() {
            DialMode::Preview
        } else {
            self.cfg.mode
        };
        let (contact, agent, attempt) = match mode {
            DialMode::Preview => {
                let Some(attempt) = self.accepted.pop_front() else {
                    return Ok(None);
                };
                let Some((contact, agent)) = self.offers.remove(&attempt) else {
                    return Ok(None);
                };
                // The contact was checked when offered; the DNC list may have changed.
                if self
                    .contacts
                    .get(&contact)
                    .is_some_and(|e| dnc.contains(&e.number))
                {
                    self.reserved.remove(&agent);
                    self.figures.dnc_skipped += 1;
                    self.finish_contact(contact, FinalState::Dnc);
                    self.save_contact(contact)?;
                    return Ok(None);
                }
                (contact, Some(agent), attempt)
            }
            DialMode::Progressive => {
                let Some(agent) = self.ready_unreserved().next().cloned() else {
                    return Ok(None);
                };
                let Some(contact) = self.next_contact(now_ms, dnc)? else {
                    self.check_finished();
                    return Ok(None);
                };
                (contact, Some(agent), self.new_attempt())
            }
            DialMode::Predictive => {
                let input = PacingInput {
                    ready_agents: self.ready_unreserved().count() as u32,
                    busy_agents: self
                        .agents
                        .values()
                        .filter(|a| **a == Availability::Busy)
                        .count() as u32,
                    in_flight: self.in_flight.values().filter(|f| !f.settled).count() as u32,
                    waiting: 0,
                };
                if self.pacer.dials(now_ms, DialMode::Predictive, input) == 0 {
                    return Ok(None);
                }
                let Some(contact) = self.next_contact(now_ms, dnc)? else {
                    self.check_finished();
                    return Ok(None);
                };
                (contact, None, self.new_attempt())
            }
            DialMode::Agentless => {
                let Some(contact) = self.next_contact(now_ms, dnc)? else {
                    self.check_finished();
                    return Ok(None);
                };
                (contact, None, self.new_attempt())
            }
        };
        let Some(e) = self.contacts.get_mut(&contact) else {
            return Ok(None);
        };
        e.rec.attempts += 1;
        let rec = AttemptRecord {
            id: attempt,
            contact,
            number: e.number.to_string(),
            dialed_ms: now_ms,
            reserved_agent: agent.clone(),
            outcome: None,
            ended_ms: None,
            amd: None,
            agent: None,
            message_left: false,
            false_positive: false,
            disposition: None,
            note: None,
            false_positive_ms: None,
        };
        let e = &self.contacts[&contact];
        let request = DialRequest {
            campaign: self.cfg.name.clone(),
            attempt,
            contact,
            number: e.number.clone(),
            caller_id: self.cfg.caller_id.clone(),
            trunk: self.cfg.trunk.clone(),
            ring_timeout: self.cfg.ring_timeout,
            agent: agent.clone(),
            amd: self.cfg.amd,
            variables: self.variables(e),
        };
        if let Some(a) = &agent {
            self.reserved.insert(a.clone(), attempt);
        }
        self.roll_day(now_ms);
        self.today.dialed += 1;
        // Durable before the call goes out: after a crash this attempt is found
        // without outcome and its contact falls under the 72-hour rule.
        record::put(
            &*self.store,
            ATTEMPTS_TREE,
            &record::key(&self.cfg.name, attempt),
            &rec,
        )?;
        self.save_contact(contact)?;
        self.save_state()?;
        self.in_flight.insert(
            attempt,
            InFlight {
                rec,
                settled: false,
                abandon_counted: false,
            },
        );
        self.figures.dialed += 1;
        self.figures_dirty = true;
        Ok(Some(request))
    }

    fn new_attempt(&mut self) -> AttemptId {
        let a = self.next_attempt;
        self.next_attempt += 1;
        a
    }

    /// How a dial ended; durable when it returns.
    pub fn handle_result(
        &mut self,
        now: SystemTime,
        attempt: AttemptId,
        result: CallResult,
    ) -> Result<Outcome, CampaignError> {
        let now_ms = unix_ms(now);
        self.last_now = now_ms;
        let Some(InFlight {
            mut rec,
            abandon_counted,
            ..
        }) = self.in_flight.remove(&attempt)
        else {
            return Err(self.unknown(attempt, "in progress"));
        };
        if let Some(a) = &rec.reserved_agent {
            if self.reserved.get(a) == Some(&attempt) {
                self.reserved.remove(a);
            }
        }
        let after = Duration::from_millis(now_ms.saturating_sub(rec.dialed_ms));
        let amd_name = |a: Option<AmdOutcome>| a.map(|a| a.as_str().to_string());
        let contact = rec.contact;
        let (outcome, resolution) = match result {
            CallResult::Connected { agent, amd } => {
                rec.agent = Some(agent);
                rec.amd = amd_name(amd);
                (Outcome::Human, Resolution::Human { after })
            }
            CallResult::Played { amd } => {
                rec.amd = amd_name(amd);
                (Outcome::Human, Resolution::NoPerson)
            }
            CallResult::Abandoned { amd } => {
                rec.amd = amd_name(amd);
                (Outcome::Abandoned, Resolution::Abandoned { after })
            }
            CallResult::Machine { message_left } => {
                rec.amd = Some("machine".into());
                rec.message_left = message_left;
                (Outcome::Machine, Resolution::NoPerson)
            }
            CallResult::Busy => (Outcome::Busy, Resolution::NoPerson),
            CallResult::NoAnswer => (Outcome::NoAnswer, Resolution::NoPerson),
            CallResult::Failed { .. } => (Outcome::Failed, Resolution::NoPerson),
        };
        // An abandon counted when it happened is not counted again.
        let counted = abandon_counted && outcome == Outcome::Abandoned;
        if self.cfg.mode != DialMode::Agentless && !counted {
            self.pacer.handle_resolution(now_ms, resolution);
        }
        rec.outcome = Some(outcome);
        rec.ended_ms = Some(now_ms);
        self.count(Some(outcome), false);
        self.count_today(now_ms, Some(outcome), false);

        let retries = self.cfg.retries;
        let rule: Option<RetryRule> = match outcome {
            Outcome::Human => None,
            Outcome::Machine if rec.message_left => None,
            Outcome::Machine => Some(retries.machine),
            Outcome::Busy => Some(retries.busy),
            Outcome::NoAnswer => Some(retries.no_answer),
            Outcome::Failed | Outcome::Interrupted => Some(retries.failed),
            Outcome::Abandoned => Some(retries.abandoned),
        };
        let max_attempts = self.cfg.max_attempts;
        let guaranteed = self.cfg.mode.agent_guaranteed();
        let mut finish = None;
        if let Some(e) = self.contacts.get_mut(&contact) {
            let n = e
                .rec
                .outcomes
                .entry(outcome.as_str().to_string())
                .or_insert(0);
            *n += 1;
            let n = *n;
            if outcome == Outcome::Abandoned {
                e.rec.last_abandon_ms = Some(now_ms);
            }
            match rule {
                None if outcome == Outcome::Human => finish = Some(FinalState::Reached),
                None => finish = Some(FinalState::MessageLeft),
                Some(r) if n > r.max || e.rec.attempts >= max_attempts => {
                    finish = Some(FinalState::Exhausted(outcome))
                }
                Some(r) => {
                    let mut delay = r.delay;
                    if outcome == Outcome::Abandoned && !guaranteed {
                        delay = delay.max(ABANDON_REDIAL);
                    }
                    let due = now_ms + delay.as_millis() as u64;
                    self.reschedule(contact, due);
                }
            }
        }
        if let Some(f) = finish {
            self.finish_contact(contact, f);
        }
        record::put(
            &*self.store,
            ATTEMPTS_TREE,
            &record::key(&self.cfg.name, attempt),
            &rec,
        )?;
        self.save_contact(contact)?;
        self.put_state()?;
        self.store.flush()?;
        self.check_finished();
        Ok(outcome)
    }

    /// A dial in progress needs no agent any more: its person is talking to an agent, or
    /// a machine answered. Predictive pacing then stops counting it among the calls in
    /// flight that may still bring a person (the agent it took counts as busy); it still
    /// holds a line until [`Campaign::handle_result`].
    pub fn handle_settled(&mut self, attempt: AttemptId) {
        if let Some(f) = self.in_flight.get_mut(&attempt) {
            f.settled = true;
        }
    }

    /// A dial in progress abandoned its person (no agent within 2 s; the safe-harbor
    /// prompt plays and [`Campaign::handle_result`] follows when the call ends): the
    /// abandon counts in the pacing window now, so the pacer does not dial on a window
    /// that misses it for the length of the prompt.
    pub fn handle_abandoning(&mut self, now: SystemTime, attempt: AttemptId) {
        let now_ms = unix_ms(now);
        let Some(f) = self.in_flight.get_mut(&attempt) else {
            return;
        };
        if f.abandon_counted {
            return;
        }
        f.abandon_counted = true;
        f.settled = true;
        let after = Duration::from_millis(now_ms.saturating_sub(f.rec.dialed_ms));
        self.last_now = self.last_now.max(now_ms);
        if self.cfg.mode != DialMode::Agentless {
            self.pacer
                .handle_resolution(now_ms, Resolution::Abandoned { after });
        }
        self.figures_dirty = true;
    }

    /// One attempt as stored (or in progress).
    pub fn attempt(&self, attempt: AttemptId) -> Result<AttemptRecord, CampaignError> {
        self.stored_attempt(attempt)
    }

    fn stored_attempt(&self, attempt: AttemptId) -> Result<AttemptRecord, CampaignError> {
        if let Some(f) = self.in_flight.get(&attempt) {
            return Ok(f.rec.clone());
        }
        let key = record::key(&self.cfg.name, attempt);
        match self.store.get(ATTEMPTS_TREE, &key)? {
            Some(v) => Ok(record::decode(ATTEMPTS_TREE, &v)?),
            None => Err(self.unknown(attempt, "stored")),
        }
    }

    /// The agent's disposition for an attempt: code and note; durable. A later one
    /// replaces both (the agent corrected it); one with neither a code nor a note (a
    /// wrap-up ended without a disposition) leaves an earlier one in place.
    pub fn handle_disposition(
        &mut self,
        attempt: AttemptId,
        disposition: &str,
        note: &str,
    ) -> Result<(), CampaignError> {
        let mut rec = self.stored_attempt(attempt)?;
        if disposition.is_empty() && note.is_empty() {
            return Ok(());
        }
        rec.disposition = Some(disposition.to_string()).filter(|d| !d.is_empty());
        rec.note = Some(note.to_string()).filter(|n| !n.is_empty());
        if let Some(f) = self.in_flight.get_mut(&attempt) {
            f.rec = rec.clone();
        }
        record::put(
            &*self.store,
            ATTEMPTS_TREE,
            &record::key(&self.cfg.name, attempt),
            &rec,
        )?;
        self.store.flush()?;
        Ok(())
    }

    /// A call taken for a machine was a person (found out later, e.g. the person spoke
    /// during the machine message, or a QA reviewer heard the recording): counted as
    /// abandoned at `now` in the rolling window, as the rules require, and the contact
    /// falls under the 72-hour rule; durable. Returns `false` when the attempt was
    /// reported already (counted once); an attempt whose outcome is not `machine` is
    /// refused ([`CampaignError::NotMachine`]).
    pub fn handle_false_positive(
        &mut self,
        now: SystemTime,
        attempt: AttemptId,
    ) -> Result<bool, CampaignError> {
        let now_ms = unix_ms(now);
        self.last_now = self.last_now.max(now_ms);
        let mut rec = self.stored_attempt(attempt)?;
        if rec.outcome != Some(Outcome::Machine) {
            return Err(CampaignError::NotMachine {
                campaign: self.cfg.name.clone(),
                attempt,
                outcome: rec.outcome.map_or("in progress", Outcome::as_str),
            });
        }
        if rec.false_positive {
            return Ok(false);
        }
        rec.false_positive = true;
        rec.false_positive_ms = Some(now_ms);
        self.count(None, true);
        self.count_today(now_ms, None, true);
        self.pacer.handle_false_positive(now_ms);
        if let Some(e) = self.contacts.get_mut(&rec.contact) {
            e.rec.last_abandon_ms = Some(now_ms);
            if e.rec.done.is_none() && !self.cfg.mode.agent_guaranteed() {
                let until = now_ms + ABANDON_REDIAL.as_millis() as u64;
                if e.rec.next_at_ms.is_some_and(|t| t < until) {
                    self.reschedule(rec.contact, until);
                }
            }
        }
        record::put(
            &*self.store,
            ATTEMPTS_TREE,
            &record::key(&self.cfg.name, attempt),
            &rec,
        )?;
        self.save_contact(rec.contact)?;
        self.put_state()?;
        self.store.flush()?;
        Ok(true)
    }

    fn check_finished(&mut self) {
        if self.state == RunState::Running
            && self.figures.contacts_left == 0
            && self.in_flight.is_empty()
            && self.offers.is_empty()
        {
            self.state = RunState::Finished;
            self.figures_dirty = true;
            // Best effort: the state is derived from the contacts on the next open.
            let _ = self.save_state();
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CampaignEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if self.figures_dirty {
            self.figures_dirty = false;
            return Some(CampaignEvent::Figures(Box::new(self.figures())));
        }
        None
    }

    /// When to call `poll_dial` next without other input: the next due contact, or
    /// the pacing tick of a running predictive campaign.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        let deadline = self.deadlines.values().min().copied();
        if self.state != RunState::Running {
            return deadline.map(|d| UNIX_EPOCH + Duration::from_millis(d.max(self.last_now)));
        }
        let due = self.schedule.first().map(|(t, _)| *t);
        let due = match (due, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let tick = (self.cfg.mode == DialMode::Predictive)
            .then(|| self.last_now + PACING_TICK.as_millis() as u64);
        let t = match (due, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(UNIX_EPOCH + Duration::from_millis(t.max(self.last_now)))
    }
}
