//! `caruso.v1.Campaigns`: outbound campaigns and the do-not-call list over a
//! [`DialerHandle`] (see `proto/proto/caruso/v1/campaigns.proto` for the contract).
//! Errors become statuses in [`ApiError`]'s `From` (the one place).
//!
//! `Create` turns the request into a `[[campaigns]]` table and lets the dialer validate
//! it exactly as the config would; error messages name the request field.

use caruso_proto::caruso::v1 as pb;
use caruso_proto::caruso::v1::campaigns_server;
use tonic::{Request, Response, Status};

use super::ApiError;
use crate::dialer::campaign::RunState;
use crate::dialer::pacing::DialMode;
use crate::dialer::task::{AttemptInfo, CampaignInfo, Control, DialerCommand, DialerHandle};

/// Largest ListDnc page.
const MAX_PAGE: u32 = 10_000;
/// ListDnc page when the request says 0.
const DEFAULT_PAGE: u32 = 1_000;
/// ListAttempts page when the request says 0.
const DEFAULT_ATTEMPTS: u32 = 100;

/// Implementation of the `caruso.v1.Campaigns` gRPC service.
#[derive(Debug, Clone)]
pub struct CampaignsService {
    dialer: DialerHandle,
}

impl CampaignsService {
    /// The service over the dialer task's handle.
    pub fn new(dialer: DialerHandle) -> Self {
        Self { dialer }
    }

    async fn control(
        &self,
        r: pb::CampaignRef,
        action: Control,
    ) -> Result<pb::CampaignStatus, Status> {
        let info = self
            .dialer
            .ask(|reply| DialerCommand::Control {
                name: r.name,
                action,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(status_out(&info))
    }
}

fn mode_out(m: DialMode) -> pb::DialMode {
    match m {
        DialMode::Preview => pb::DialMode::Preview,
        DialMode::Progressive => pb::DialMode::Progressive,
        DialMode::Predictive => pb::DialMode::Predictive,
        DialMode::Agentless => pb::DialMode::Agentless,
    }
}

fn state_out(s: RunState) -> pb::CampaignState {
    match s {
        RunState::Idle => pb::CampaignState::Idle,
        RunState::Running => pb::CampaignState::Running,
        RunState::Paused => pb::CampaignState::Paused,
        RunState::Stopped => pb::CampaignState::Stopped,
        RunState::Finished => pb::CampaignState::Finished,
    }
}

/// A campaign on the wire.
fn status_out(i: &CampaignInfo) -> pb::CampaignStatus {
    let f = &i.figures;
    pb::CampaignStatus {
        name: f.campaign.clone(),
        mode: mode_out(i.mode) as i32,
        state: state_out(f.state) as i32,
        dialed: f.dialed,
        in_flight: f.in_flight,
        answered: f.answered,
        human: f.human,
        machine: f.machine,
        busy: f.busy,
        no_answer: f.no_answer,
        failed: f.failed,
        abandoned: f.abandoned,
        amd_false_positives: f.amd_false_positives,
        dnc_skipped: f.dnc_skipped,
        outside_window: f.outside_window,
        abandon_rate_percent: f.abandon_rate * 100.0,
        contacts: f.contacts,
        contacts_left: f.contacts_left,
        today: Some(pb::CampaignDay {
            date: f.today.day.clone(),
            dialed: f.today.dialed,
            answered: f.today.answered,
            human: f.today.human,
            machine: f.today.machine,
            abandoned: f.today.abandoned,
        }),
    }
}

/// An attempt on the wire.
fn attempt_out(a: &AttemptInfo) -> pb::CampaignAttempt {
    let r = &a.record;
    pb::CampaignAttempt {
        id: r.id,
        contact: r.contact,
        contact_name: a.contact_name.clone(),
        number: r.number.clone(),
        started_unix_ms: r.dialed_ms,
        ended_unix_ms: r.ended_ms.unwrap_or(0),
        outcome: r
            .outcome
            .map(|o| o.as_str().to_string())
            .unwrap_or_default(),
        amd: r.amd.clone().unwrap_or_default(),
        agent: r.agent.clone().unwrap_or_default(),
        disposition: r.disposition.clone().unwrap_or_default(),
        note: r.note.clone().unwrap_or_default(),
        false_positive: r.false_positive,
        message_left: r.message_left,
    }
}

/// The `[[campaigns]]` table a Create request stands for (empty fields: defaults).
pub fn table_of(r: &pb::CreateCampaignRequest) -> Result<toml::Table, ApiError> {
    use toml::Value as V;
    let mut t = toml::Table::new();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            t.insert(k.into(), V::String(v.into()));
        }
    };
    put("name", &r.name);
    put("queue", &r.queue);
    put("trunk", &r.trunk);
    put("caller_id", &r.caller_id);
    put("default_country", &r.default_country);
    put("timezone", &r.timezone);
    put("safe_harbor", &r.safe_harbor_prompt);
    put("script", &r.script);
    if r.name.is_empty() {
        return Err(ApiError::InvalidArgument(
            "name: expected 1 to 64 letters, digits, - or _".into(),
        ));
    }
    let mode = match pb::DialMode::try_from(r.mode) {
        Ok(pb::DialMode::Unspecified) | Ok(pb::DialMode::Progressive) => "progressive",
        Ok(pb::DialMode::Preview) => "preview",
        Ok(pb::DialMode::Predictive) => "predictive",
        Ok(pb::DialMode::Agentless) => "agentless",
        Err(_) => {
            return Err(ApiError::InvalidArgument(format!(
                "mode: expected a DialMode, found {}",
                r.mode
            )))
        }
    };
    t.insert("mode".into(), V::String(mode.into()));
    let mut window = toml::Table::new();
    if !r.window_from.is_empty() {
        window.insert("from".into(), V::String(r.window_from.clone()));
    }
    if !r.window_to.is_empty() {
        window.insert("to".into(), V::String(r.window_to.clone()));
    }
    if !window.is_empty() {
        t.insert("window".into(), V::Table(window));
    }
    let mut abandon = toml::Table::new();
    if let Some(p) = r.abandon_target_percent {
        abandon.insert("target_percent".into(), V::Float(p));
    }
    match pb::AbandonWindow::try_from(r.abandon_window) {
        Ok(pb::AbandonWindow::Unspecified) => {}
        Ok(pb::AbandonWindow::AbandonWindow24h) => {
            abandon.insert("window".into(), V::String("24h".into()));
        }
        Ok(pb::AbandonWindow::AbandonWindow30d) => {
            abandon.insert("window".into(), V::String("30d".into()));
        }
        Err(_) => {
            return Err(ApiError::InvalidArgument(format!(
                "abandon_window: expected an AbandonWindow, found {}",
                r.abandon_window
            )))
        }
    }
    if !abandon.is_empty() {
        t.insert("abandon".into(), V::Table(abandon));
    }
    if r.ring_timeout_s != 0 {
        t.insert("ring_timeout_s".into(), V::Integer(r.ring_timeout_s.into()));
    }
    if r.max_attempts != 0 {
        t.insert("max_attempts".into(), V::Integer(r.max_attempts.into()));
    }
    match (r.message_prompt.is_empty(), r.message_flow.is_empty()) {
        (true, true) => {}
        (false, true) => {
            t.insert(
                "message".into(),
                V::Table(
                    [("prompt".to_string(), V::String(r.message_prompt.clone()))]
                        .into_iter()
                        .collect(),
                ),
            );
        }
        (true, false) => {
            t.insert(
                "message".into(),
                V::Table(
                    [("flow".to_string(), V::String(r.message_flow.clone()))]
                        .into_iter()
                        .collect(),
                ),
            );
        }
        (false, false) => {
            return Err(ApiError::InvalidArgument(
                "message_prompt, message_flow: expected at most one of them".into(),
            ))
        }
    }
    Ok(t)
}

#[tonic::async_trait]
impl campaigns_server::Campaigns for CampaignsService {
    async fn create(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        let table = table_of(request.get_ref())?;
        let info = self
            .dialer
            .ask(|reply| DialerCommand::Create { table, reply })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(status_out(&info)))
    }

    async fn load_contacts(
        &self,
        request: Request<pb::LoadContactsRequest>,
    ) -> Result<Response<pb::LoadContactsResponse>, Status> {
        let r = request.into_inner();
        let res = self
            .dialer
            .ask(|reply| DialerCommand::Load {
                name: r.name,
                csv: r.csv,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::LoadContactsResponse {
            added: res.added,
            rejected: res
                .rejected
                .iter()
                .map(|e| pb::RowError {
                    line: u32::try_from(e.line).unwrap_or(u32::MAX),
                    reason: e.reason.clone(),
                })
                .collect(),
            status: Some(status_out(&res.info)),
        }))
    }

    async fn start(
        &self,
        request: Request<pb::CampaignRef>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        Ok(Response::new(
            self.control(request.into_inner(), Control::Start).await?,
        ))
    }

    async fn pause(
        &self,
        request: Request<pb::CampaignRef>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        Ok(Response::new(
            self.control(request.into_inner(), Control::Pause).await?,
        ))
    }

    async fn resume(
        &self,
        request: Request<pb::CampaignRef>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        Ok(Response::new(
            self.control(request.into_inner(), Control::Resume).await?,
        ))
    }

    async fn stop(
        &self,
        request: Request<pb::CampaignRef>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        Ok(Response::new(
            self.control(request.into_inner(), Control::Stop).await?,
        ))
    }

    async fn get_status(
        &self,
        request: Request<pb::CampaignRef>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        let name = request.into_inner().name;
        let info = self
            .dialer
            .ask(|reply| DialerCommand::Status { name, reply })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(status_out(&info)))
    }

    async fn list(
        &self,
        _request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let all = self
            .dialer
            .ask(|reply| DialerCommand::List { reply })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: all.iter().map(status_out).collect(),
        }))
    }

    async fn add_dnc(
        &self,
        request: Request<pb::DncRequest>,
    ) -> Result<Response<pb::DncResponse>, Status> {
        let r = request.into_inner();
        let c = self
            .dialer
            .ask(|reply| DialerCommand::AddDnc {
                numbers: r.numbers,
                country: r.default_country,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DncResponse {
            changed: c.changed,
            unchanged: c.unchanged,
        }))
    }

    async fn remove_dnc(
        &self,
        request: Request<pb::DncRequest>,
    ) -> Result<Response<pb::DncResponse>, Status> {
        let r = request.into_inner();
        let c = self
            .dialer
            .ask(|reply| DialerCommand::RemoveDnc {
                numbers: r.numbers,
                country: r.default_country,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DncResponse {
            changed: c.changed,
            unchanged: c.unchanged,
        }))
    }

    async fn list_attempts(
        &self,
        request: Request<pb::ListAttemptsRequest>,
    ) -> Result<Response<pb::ListAttemptsResponse>, Status> {
        let r = request.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_ATTEMPTS,
            n if n > MAX_PAGE => {
                return Err(ApiError::InvalidArgument(format!(
                    "limit: expected 1 to {MAX_PAGE}, found {n}"
                ))
                .into())
            }
            n => n,
        };
        let list = self
            .dialer
            .ask(|reply| DialerCommand::ListAttempts {
                name: r.campaign,
                contact: r.contact,
                limit: limit as usize,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListAttemptsResponse {
            attempts: list.iter().map(attempt_out).collect(),
        }))
    }

    async fn report_false_positive(
        &self,
        request: Request<pb::ReportFalsePositiveRequest>,
    ) -> Result<Response<pb::ReportFalsePositiveResponse>, Status> {
        let r = request.into_inner();
        let res = self
            .dialer
            .ask(|reply| DialerCommand::ReportFalsePositive {
                name: r.campaign,
                attempt: r.attempt,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ReportFalsePositiveResponse {
            counted: res.counted,
            attempt: Some(attempt_out(&res.attempt)),
            status: Some(status_out(&res.info)),
        }))
    }

    async fn list_dnc(
        &self,
        request: Request<pb::ListDncRequest>,
    ) -> Result<Response<pb::ListDncResponse>, Status> {
        let r = request.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(ApiError::InvalidArgument(format!(
                    "limit: expected 1 to {MAX_PAGE}, found {n}"
                ))
                .into())
            }
            n => n,
        };
        let after = Some(r.after).filter(|a| !a.is_empty());
        let page = self
            .dialer
            .ask(|reply| DialerCommand::ListDnc {
                after,
                limit: limit as usize,
                reply,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListDncResponse {
            numbers: page.numbers,
            total: page.total,
        }))
    }
}

#[cfg(test)]
mod tests;
