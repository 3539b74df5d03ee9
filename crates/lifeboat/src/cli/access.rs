//! `lifeboat account ...` and `lifeboat whitelist ...`

use std::path::PathBuf;

use clap::Subcommand;
use lifeboat_api::instances::{AccountView, CreateAccountRequest, WhitelistRequest, WhitelistView};

use super::Output;
use super::client::Client;
use super::instance::{enc, local};
use super::output;
use super::read_password_file;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create a login account on an instance.
    Create {
        id: String,
        #[arg(long)]
        account: String,
        /// A file whose first line is the account's password.
        #[arg(long)]
        password_file: PathBuf,
    },
    /// List an instance's accounts.
    List { id: String },
}

#[derive(Debug, Subcommand)]
pub enum WhitelistCommand {
    /// Allow an address or network (CIDR) to connect.
    Add { id: String, cidr: String },
    /// Stop allowing an address or network.
    Remove { id: String, cidr: String },
    /// List the allowed addresses and networks.
    List { id: String },
}

pub async fn run_account(client: &Client, out: Output, cmd: AccountCommand) -> anyhow::Result<()> {
    let (id, list) = match cmd {
        AccountCommand::Create {
            id,
            account,
            password_file,
        } => {
            let password = read_password_file(&password_file)?;
            let body = CreateAccountRequest {
                account: account.clone(),
                password,
            };
            let list: Vec<AccountView> = client
                .post(&format!("/instances/{}/accounts", enc(&id)), &body)
                .await?;
            if out == Output::Table {
                println!("Created account {account} on {id}.");
            }
            (id, list)
        }
        AccountCommand::List { id } => {
            let list = client
                .get(&format!("/instances/{}/accounts", enc(&id)))
                .await?;
            (id, list)
        }
    };
    let _ = id;
    output::print(out, &list, |list| {
        output::table(
            &["ACCOUNT", "PRIVILEGED", "CREATED"],
            list.iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        if a.privileged { "yes" } else { "no" }.into(),
                        local(a.created_at),
                    ]
                })
                .collect(),
        )
    })
}

pub async fn run_whitelist(
    client: &Client,
    out: Output,
    cmd: WhitelistCommand,
) -> anyhow::Result<()> {
    let list: Vec<WhitelistView> = match cmd {
        WhitelistCommand::Add { id, cidr } => {
            client
                .post(
                    &format!("/instances/{}/whitelist", enc(&id)),
                    &WhitelistRequest { cidr },
                )
                .await?
        }
        WhitelistCommand::Remove { id, cidr } => {
            client
                .delete(&format!(
                    "/instances/{}/whitelist?cidr={}",
                    enc(&id),
                    enc(&cidr)
                ))
                .await?
        }
        WhitelistCommand::List { id } => {
            client
                .get(&format!("/instances/{}/whitelist", enc(&id)))
                .await?
        }
    };
    output::print(out, &list, |list| {
        output::table(
            &["CIDR", "ADDED BY", "ADDED"],
            list.iter()
                .map(|w| vec![w.cidr.clone(), w.added_by.clone(), local(w.created_at)])
                .collect(),
        )
    })
}
