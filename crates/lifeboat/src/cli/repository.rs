//! `lifeboat repository list`: the masters whose backups the regions' repositories
//! hold, including those this server does not know (written by a server whose host is
//! gone), each with its restorable window.

use std::process::ExitCode;

use clap::Subcommand;
use lifeboat_api::backups::RepositoryList;

use super::Output;
use super::client::Client;
use super::instance::enc;
use super::output;
use super::zone::Zone;

#[derive(Debug, Subcommand)]
pub enum RepositoryCommand {
    /// List the masters whose backups a region's repository holds, with their windows.
    List {
        /// Only this region's repository (default: every region).
        #[arg(long)]
        region: Option<String>,
        /// Time zone to show times in (IANA name); default: this machine's.
        #[arg(long)]
        tz: Option<String>,
    },
}

pub async fn run(client: &Client, out: Output, cmd: RepositoryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RepositoryCommand::List { region, tz } => {
            let zone = Zone::parse(tz.as_deref())?;
            let path = match &region {
                Some(r) => format!("/repository?region={}", enc(r)),
                None => "/repository".to_string(),
            };
            let list: RepositoryList = client.get(&path).await?;
            output::print(out, &list, |l| {
                output::table(
                    &[
                        "ID", "NAME", "REGION", "ENGINE", "RELATION", "BACKUPS", "EARLIEST",
                        "LATEST",
                    ],
                    l.entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.id.clone(),
                                e.name.clone().unwrap_or_else(|| "-".into()),
                                e.region.clone(),
                                e.engine_version.clone().unwrap_or_else(|| "-".into()),
                                relation_text(&e.relation, e.owner.as_deref()),
                                e.backups.to_string(),
                                e.window
                                    .earliest
                                    .map_or_else(|| "-".into(), |t| zone.format(t)),
                                e.window
                                    .latest
                                    .map_or_else(|| "-".into(), |t| zone.format(t)),
                            ]
                        })
                        .collect(),
                );
                if l.entries.iter().any(|e| e.relation != "managed") {
                    println!(
                        "Restore one of them into a new master with `lifeboat instance clone ID --at TIME --name NAME`."
                    );
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn relation_text(relation: &str, owner: Option<&str>) -> String {
    match (relation, owner) {
        ("managed", _) => "instance of this server".into(),
        ("deleted", _) => "deleted on this server".into(),
        ("other_server", Some(o)) => format!("written by server {o}"),
        (other, _) => other.replace('_', " "),
    }
}
