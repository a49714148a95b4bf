//! `caruso-agent campaign --token T <subcommand>`: outbound campaigns and the
//! do-not-call list over `caruso.v1.Campaigns` (a supervisor or admin token).
//!
//! - `list`, `status NAME`: state and figures as `key: value` lines;
//! - `load NAME FILE.csv`: adds the contacts; prints `added: N` and one
//!   `rejected: line L: reason` line per refused row (exit code 0 even with rejected
//!   rows: the good ones were added);
//! - `start|pause|resume|stop NAME`: prints the new state;
//! - `dnc add|remove [--country PL] NUMBER...`, `dnc list [--after N] [--limit N]`;
//! - `attempts NAME [--contact ID] [--limit N]`: the newest attempts, one
//!   `attempt=ID key=value ...` line each, newest first (for QA review);
//! - `false-positive NAME ATTEMPT`: reports a person the AMD took for a machine
//!   (counted as abandoned); prints the attempt and the campaign's abandoned figures.

use std::time::Duration;

use anyhow::Context;
use caruso_proto::caruso::v1 as pb;
use caruso_proto::caruso::v1::campaigns_client::CampaignsClient;
use clap::{Args, Subcommand};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

use crate::agent::Bearer;

/// `campaign` arguments.
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// A supervisor or admin token; default: the top-level --token or $CARUSO_TOKEN.
    #[arg(long)]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: CampaignCommand,
}

/// The campaign subcommands.
#[derive(Debug, Subcommand)]
enum CampaignCommand {
    /// Every campaign's state and figures.
    List,
    /// One campaign's state and figures.
    Status {
        /// Campaign name.
        name: String,
    },
    /// Load contacts from a CSV file (header with a phone column).
    Load {
        /// Campaign name.
        name: String,
        /// CSV file.
        file: std::path::PathBuf,
    },
    /// Start (or restart) dialing.
    Start {
        /// Campaign name.
        name: String,
    },
    /// No new dials until resume.
    Pause {
        /// Campaign name.
        name: String,
    },
    /// Dial again after a pause.
    Resume {
        /// Campaign name.
        name: String,
    },
    /// Stop dialing.
    Stop {
        /// Campaign name.
        name: String,
    },
    /// The newest attempts (dials), newest first, one line each.
    Attempts {
        /// Campaign name.
        name: String,
        /// Only this contact's attempts.
        #[arg(long)]
        contact: Option<u64>,
        /// At most this many (server default 100).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Report an AMD false positive: the attempt's "machine" was a person (counted as
    /// an abandoned call, as the rules require).
    FalsePositive {
        /// Campaign name.
        name: String,
        /// Attempt id (from `attempts`).
        attempt: u64,
    },
    /// The do-not-call list.
    Dnc {
        /// What to do.
        #[command(subcommand)]
        command: DncCommand,
    },
}

/// The do-not-call subcommands.
#[derive(Debug, Subcommand)]
enum DncCommand {
    /// Put numbers on the list.
    Add {
        /// Country of national numbers (ISO alpha-2; default US).
        #[arg(long, default_value = "")]
        country: String,
        /// Numbers.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Take numbers off the list.
    Remove {
        /// Country of national numbers (ISO alpha-2; default US).
        #[arg(long, default_value = "")]
        country: String,
        /// Numbers.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Print the list (one number a line).
    List {
        /// Start after this number.
        #[arg(long, default_value = "")]
        after: String,
        /// Page size (server default 1000).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
}

fn state_name(s: pb::CampaignState) -> &'static str {
    match s {
        pb::CampaignState::Unspecified => "unknown",
        pb::CampaignState::Idle => "idle",
        pb::CampaignState::Running => "running",
        pb::CampaignState::Paused => "paused",
        pb::CampaignState::Stopped => "stopped",
        pb::CampaignState::Finished => "finished",
    }
}

fn mode_name(m: pb::DialMode) -> &'static str {
    match m {
        pb::DialMode::Unspecified => "unknown",
        pb::DialMode::Preview => "preview",
        pb::DialMode::Progressive => "progressive",
        pb::DialMode::Predictive => "predictive",
        pb::DialMode::Agentless => "agentless",
    }
}

/// A campaign as `key: value` lines.
pub fn format_campaign(s: &pb::CampaignStatus) -> String {
    format!(
        "campaign: {}\nmode: {}\nstate: {}\ncontacts: {}\ncontacts_left: {}\ndialed: {}\nin_flight: {}\nanswered: {}\nhuman: {}\nmachine: {}\nbusy: {}\nno_answer: {}\nfailed: {}\nabandoned: {}\nabandon_rate_percent: {:.2}\namd_false_positives: {}\ndnc_skipped: {}\noutside_window: {}\n",
        s.name,
        mode_name(s.mode()),
        state_name(s.state()),
        s.contacts,
        s.contacts_left,
        s.dialed,
        s.in_flight,
        s.answered,
        s.human,
        s.machine,
        s.busy,
        s.no_answer,
        s.failed,
        s.abandoned,
        s.abandon_rate_percent,
        s.amd_false_positives,
        s.dnc_skipped,
        s.outside_window,
    ) + &format_today(s.today.as_ref())
}

/// Today's figures as `today...: value` lines (nothing when the server sent none).
fn format_today(t: Option<&pb::CampaignDay>) -> String {
    let Some(t) = t else {
        return String::new();
    };
    format!(
        "today: {}
today_dialed: {}
today_answered: {}
today_human: {}
today_machine: {}
today_abandoned: {}
",
        t.date, t.dialed, t.answered, t.human, t.machine, t.abandoned
    )
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC); empty for 0.
fn utc(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian, 400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One attempt as `attempt=ID key=value ...` (values quoted when needed).
pub fn attempt_line(a: &pb::CampaignAttempt) -> String {
    use crate::agent::quote;
    format!(
        "attempt={} contact={} name={} number={} started={} ended={} outcome={} amd={} agent={} disposition={} note={} false_positive={} message_left={}",
        a.id,
        a.contact,
        quote(&a.contact_name),
        quote(&a.number),
        utc(a.started_unix_ms),
        utc(a.ended_unix_ms),
        if a.outcome.is_empty() { "in_progress" } else { &a.outcome },
        quote(&a.amd),
        quote(&a.agent),
        quote(&a.disposition),
        quote(&a.note),
        a.false_positive,
        a.message_left,
    )
}

fn failed(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} failed: {:?}: {}", s.code(), s.message())
}

/// Runs one campaign command; the exit code on success.
pub async fn run(
    args: CampaignArgs,
    channel: Channel,
    bearer: Bearer,
    timeout: Duration,
) -> anyhow::Result<u8> {
    let mut c = CampaignsClient::new(InterceptedService::new(channel, bearer));
    let named = |name: String| {
        let mut r = tonic::Request::new(pb::CampaignRef { name });
        r.set_timeout(timeout);
        r
    };
    match args.command {
        CampaignCommand::List => {
            let l = c
                .list(req(timeout, pb::ListCampaignsRequest {}))
                .await
                .map_err(|s| failed("List", s))?
                .into_inner();
            for (i, s) in l.campaigns.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", format_campaign(s));
            }
        }
        CampaignCommand::Status { name } => {
            let s = c
                .get_status(named(name))
                .await
                .map_err(|s| failed("GetStatus", s))?
                .into_inner();
            print!("{}", format_campaign(&s));
        }
        CampaignCommand::Load { name, file } => {
            let csv = std::fs::read(&file)
                .with_context(|| format!("cannot read the contact list {}", file.display()))?;
            let r = c
                .load_contacts(req(timeout, pb::LoadContactsRequest { name, csv }))
                .await
                .map_err(|s| failed("LoadContacts", s))?
                .into_inner();
            println!("added: {}", r.added);
            for e in &r.rejected {
                println!("rejected: line {}: {}", e.line, e.reason);
            }
            if let Some(s) = &r.status {
                println!("contacts: {}", s.contacts);
            }
        }
        CampaignCommand::Start { name } => {
            let s = c.start(named(name)).await.map_err(|s| failed("Start", s))?;
            println!("state: {}", state_name(s.into_inner().state()));
        }
        CampaignCommand::Pause { name } => {
            let s = c.pause(named(name)).await.map_err(|s| failed("Pause", s))?;
            println!("state: {}", state_name(s.into_inner().state()));
        }
        CampaignCommand::Resume { name } => {
            let s = c
                .resume(named(name))
                .await
                .map_err(|s| failed("Resume", s))?;
            println!("state: {}", state_name(s.into_inner().state()));
        }
        CampaignCommand::Stop { name } => {
            let s = c.stop(named(name)).await.map_err(|s| failed("Stop", s))?;
            println!("state: {}", state_name(s.into_inner().state()));
        }
        CampaignCommand::Attempts {
            name,
            contact,
            limit,
        } => {
            let r = c
                .list_attempts(req(
                    timeout,
                    pb::ListAttemptsRequest {
                        campaign: name,
                        contact,
                        limit,
                    },
                ))
                .await
                .map_err(|s| failed("ListAttempts", s))?
                .into_inner();
            for a in &r.attempts {
                println!("{}", attempt_line(a));
            }
        }
        CampaignCommand::FalsePositive { name, attempt } => {
            let r = c
                .report_false_positive(req(
                    timeout,
                    pb::ReportFalsePositiveRequest {
                        campaign: name,
                        attempt,
                    },
                ))
                .await
                .map_err(|s| failed("ReportFalsePositive", s))?
                .into_inner();
            println!(
                "{}",
                if r.counted {
                    "counted: true"
                } else {
                    "counted: false (reported before)"
                }
            );
            if let Some(a) = &r.attempt {
                println!("{}", attempt_line(a));
            }
            if let Some(s) = &r.status {
                println!(
                    "abandoned: {}
amd_false_positives: {}
abandon_rate_percent: {:.2}",
                    s.abandoned, s.amd_false_positives, s.abandon_rate_percent
                );
            }
        }
        CampaignCommand::Dnc { command } => match command {
            DncCommand::Add { country, numbers } => {
                let r = c
                    .add_dnc(req(
                        timeout,
                        pb::DncRequest {
                            numbers,
                            default_country: country,
                        },
                    ))
                    .await
                    .map_err(|s| failed("AddDnc", s))?
                    .into_inner();
                print_dnc("added", "already listed", &r);
            }
            DncCommand::Remove { country, numbers } => {
                let r = c
                    .remove_dnc(req(
                        timeout,
                        pb::DncRequest {
                            numbers,
                            default_country: country,
                        },
                    ))
                    .await
                    .map_err(|s| failed("RemoveDnc", s))?
                    .into_inner();
                print_dnc("removed", "not listed", &r);
            }
            DncCommand::List { after, limit } => {
                let r = c
                    .list_dnc(req(timeout, pb::ListDncRequest { after, limit }))
                    .await
                    .map_err(|s| failed("ListDnc", s))?
                    .into_inner();
                for n in &r.numbers {
                    println!("{n}");
                }
                eprintln!("total: {}", r.total);
            }
        },
    }
    Ok(0)
}

/// A request with a deadline.
fn req<T>(timeout: Duration, m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.set_timeout(timeout);
    r
}

fn print_dnc(changed: &str, unchanged: &str, r: &pb::DncResponse) {
    for n in &r.changed {
        println!("{changed}: {n}");
    }
    for n in &r.unchanged {
        println!("{unchanged}: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_lines() {
        let s = pb::CampaignStatus {
            name: "demo".into(),
            mode: pb::DialMode::Progressive as i32,
            state: pb::CampaignState::Running as i32,
            contacts: 10,
            contacts_left: 7,
            abandon_rate_percent: 1.5,
            ..Default::default()
        };
        let text = format_campaign(&s);
        assert!(text.starts_with("campaign: demo\nmode: progressive\nstate: running\n"));
        assert!(text.contains("contacts_left: 7\n"));
        assert!(text.contains("abandon_rate_percent: 1.50\n"));
        assert!(!text.contains("today"), "no day sent: no lines");
        let s = pb::CampaignStatus {
            today: Some(pb::CampaignDay {
                date: "2026-06-01".into(),
                dialed: 4,
                abandoned: 1,
                ..Default::default()
            }),
            ..s
        };
        let text = format_campaign(&s);
        assert!(
            text.contains("today: 2026-06-01\ntoday_dialed: 4\n"),
            "{text}"
        );
        assert!(text.contains("today_abandoned: 1\n"), "{text}");
    }

    #[test]
    fn attempt_lines() {
        assert_eq!(utc(0), "");
        assert_eq!(utc(1_000), "1970-01-01T00:00:01Z");
        // 2026-03-01 (after a 28-day February) and a leap day.
        assert_eq!(utc(1_772_323_200_000), "2026-03-01T00:00:00Z");
        assert_eq!(utc(1_709_210_096_000), "2024-02-29T12:34:56Z");
        let a = pb::CampaignAttempt {
            id: 12,
            contact: 3,
            contact_name: "Ann Lee".into(),
            number: "+48601000001".into(),
            started_unix_ms: 1_000,
            outcome: "machine".into(),
            amd: "machine".into(),
            false_positive: true,
            ..Default::default()
        };
        assert_eq!(
            attempt_line(&a),
            "attempt=12 contact=3 name=\"Ann Lee\" number=+48601000001 \
             started=1970-01-01T00:00:01Z ended= outcome=machine amd=machine agent= \
             disposition= note= false_positive=true message_left=false"
        );
        let a = pb::CampaignAttempt {
            outcome: String::new(),
            ..a
        };
        assert!(attempt_line(&a).contains("outcome=in_progress"));
    }
}
