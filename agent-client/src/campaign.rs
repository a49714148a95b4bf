//! `caruso-agent campaign --token T <subcommand>`: outbound campaigns and the
//! do-not-call list over `caruso.v1.Campaigns` (a supervisor or admin token).
//!
//! - `list`, `status NAME`: state and figures as `key: value` lines;
//! - `load NAME FILE.csv`: adds the contacts; prints `added: N` and one
//!   `rejected: line L: reason` line per refused row (exit code 0 even with rejected
//!   rows: the good ones were added);
//! - `start|pause|resume|stop NAME`: prints the new state;
//! - `dnc add|remove [--country PL] NUMBER...`, `dnc list [--after N] [--limit N]`.

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
    }
}
