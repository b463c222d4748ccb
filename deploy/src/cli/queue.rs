//! `waypost queue`: durable queues at the origin (`/queues/...`): declare
//! them, send and pull messages, watch their figures, and work the
//! dead-letter queue.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use waypost_api::QueueName;
use waypost_api::queues::{
    AckRequest, LeaseRequest, Leased, MAX_BATCH, MessagePage, Moved, NewMessage, QueueListing,
    QueueSpec, QueueStats, Receipt, ReplayRequest, SendRequest, SendResponse, Settled, queue_path,
};

use super::{OriginArgs, send, success};

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    #[command(flatten)]
    origin: OriginArgs,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(clap::Subcommand, Debug)]
enum QueueCommand {
    /// Declare a queue, or change an existing one's settings (its messages
    /// are kept).
    Create {
        name: QueueName,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// List queues with their depth, in-flight and dead-letter counts.
    List,
    /// Show one queue's figures and settings.
    Stats { name: QueueName },
    /// Delete a queue and every message in it.
    Delete { name: QueueName },
    /// Send a message (`-`: each line of stdin is one message, sent in
    /// batches).
    Send {
        name: QueueName,
        body: String,
        /// Deliver no earlier than this from now (e.g. 30s, 2h).
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// A repeat within the queue's dedup window is not enqueued again.
        #[arg(long)]
        dedup_id: Option<String>,
        /// Messages with one key are delivered in order, one at a time.
        #[arg(long)]
        ordering_key: Option<String>,
    },
    /// Lease messages and print them, one JSON object per line; they come
    /// back after the visibility timeout unless acked (`--ack`, or
    /// `waypost queue ack`).
    Pull {
        name: QueueName,
        #[arg(long, default_value_t = 1)]
        max: usize,
        /// Wait this long for a message when none is ready.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        wait: Duration,
        /// Ack what was printed.
        #[arg(long)]
        ack: bool,
    },
    /// Ack (delete) leased messages by receipt, `ID:ATTEMPT` as pulled.
    Ack {
        name: QueueName,
        #[arg(required = true, value_parser = parse_receipt)]
        receipts: Vec<Receipt>,
    },
    /// List the dead-letter queue (`--purge` empties it).
    Dlq {
        name: QueueName,
        #[arg(long)]
        purge: bool,
    },
    /// Move dead letters back into the queue (all of them without ids).
    Replay { name: QueueName, ids: Vec<u64> },
    /// Stop deliveries (sends are still accepted).
    Pause { name: QueueName },
    /// Resume deliveries.
    Resume { name: QueueName },
}

/// A queue's settings; unset ones take the origin's defaults.
#[derive(clap::Args, Debug)]
struct SpecArgs {
    /// How long a lease hides a message.
    #[arg(long, value_parser = humantime::parse_duration)]
    visibility_timeout: Option<Duration>,
    /// Deliveries before a message goes to the dead-letter queue.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// How long messages are kept.
    #[arg(long, value_parser = humantime::parse_duration)]
    retention: Option<Duration>,
    /// Drop messages that used up their attempts instead of keeping them.
    #[arg(long)]
    no_dead_letter: bool,
    /// Most messages held.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Most bytes held (every region keeps queues in memory).
    #[arg(long)]
    max_bytes: Option<u64>,
    /// How long dedup ids are remembered.
    #[arg(long, value_parser = humantime::parse_duration)]
    dedup_window: Option<Duration>,
}

impl SpecArgs {
    fn spec(&self) -> QueueSpec {
        let d = QueueSpec::default();
        QueueSpec {
            visibility_timeout_s: self
                .visibility_timeout
                .map_or(d.visibility_timeout_s, |v| v.as_secs()),
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            retention_s: self.retention.map_or(d.retention_s, |v| v.as_secs()),
            dead_letter: !self.no_dead_letter,
            max_messages: self.max_messages.unwrap_or(d.max_messages),
            max_bytes: self.max_bytes.unwrap_or(d.max_bytes),
            dedup_window_s: self.dedup_window.map_or(d.dedup_window_s, |v| v.as_secs()),
        }
    }
}

/// A receipt on the command line that is not `ID:ATTEMPT`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not ID:ATTEMPT (two numbers, as `pull` prints them)")]
struct BadReceipt(String);

fn parse_receipt(s: &str) -> Result<Receipt, BadReceipt> {
    let bad = || BadReceipt(s.to_string());
    let (id, attempt) = s.split_once(':').ok_or_else(bad)?;
    Ok(Receipt {
        id: id.parse().map_err(|_| bad())?,
        attempt: attempt.parse().map_err(|_| bad())?,
    })
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let http = args.origin.client(Duration::from_secs(60))?;
    let o = &args.origin;
    let url = |name: &QueueName, rest: &str| o.url(&queue_path(name, rest));
    match args.command {
        QueueCommand::Create { name, spec } => {
            let req = http.put(url(&name, "")).json(&spec.spec());
            let resp = success(send(req, "the origin").await?, "queue create").await?;
            let verb = if resp.status() == 201 {
                "created"
            } else {
                "updated"
            };
            println!("{verb} queue {name}");
        }
        QueueCommand::List => {
            let resp = send(http.get(o.url("/queues")), "the origin").await?;
            let listing: QueueListing = success(resp, "queue list").await?.json().await?;
            println!("queue\tdepth\tready\tin_flight\tdelayed\tdead\toldest_s\tpaused");
            for q in listing.queues {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    q.name,
                    q.depth,
                    q.ready,
                    q.in_flight,
                    q.delayed,
                    q.dead_letters,
                    q.oldest_age_s,
                    q.paused
                );
            }
        }
        QueueCommand::Stats { name } => {
            let resp = send(http.get(url(&name, "")), "the origin").await?;
            let stats: QueueStats = success(resp, "queue stats").await?.json().await?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
        }
        QueueCommand::Delete { name } => {
            let req = http.delete(url(&name, ""));
            success(send(req, "the origin").await?, "queue delete").await?;
            println!("deleted queue {name}");
        }
        QueueCommand::Send {
            name,
            body,
            delay,
            dedup_id,
            ordering_key,
        } => {
            let template = NewMessage {
                body: String::new(),
                delay_s: delay.map_or(0, |d| d.as_secs()),
                dedup_id,
                ordering_key,
                blob: None,
            };
            let bodies = if body == "-" {
                std::io::stdin()
                    .lock()
                    .lines()
                    .collect::<Result<Vec<_>, _>>()
                    .context("reading messages from stdin")?
            } else {
                vec![body]
            };
            let mut sent = 0;
            for chunk in bodies.chunks(MAX_BATCH) {
                let messages = chunk
                    .iter()
                    .map(|b| NewMessage {
                        body: b.clone(),
                        ..template.clone()
                    })
                    .collect();
                let req = http
                    .post(url(&name, "messages"))
                    .json(&SendRequest { messages });
                let resp = success(send(req, "the origin").await?, "queue send").await?;
                let answer: SendResponse = resp.json().await?;
                for m in &answer.messages {
                    let note = if m.duplicate { " (duplicate)" } else { "" };
                    println!("sent {}{note}", m.id);
                }
                sent += answer.messages.len();
            }
            eprintln!("{sent} message(s) sent to {name}");
        }
        QueueCommand::Pull {
            name,
            max,
            wait,
            ack,
        } => {
            let lease = LeaseRequest {
                max,
                wait_s: wait.as_secs(),
                visibility_timeout_s: None,
                request_id: None,
            };
            let req = http.post(url(&name, "lease")).json(&lease);
            let resp = success(send(req, "the origin").await?, "queue pull").await?;
            let leased: Leased = resp.json().await?;
            for d in &leased.messages {
                println!("{}", serde_json::to_string(d)?);
            }
            if ack && !leased.messages.is_empty() {
                let receipts = leased.messages.iter().map(|d| d.receipt).collect();
                print_settled(&http, url(&name, "ack"), receipts).await?;
            }
        }
        QueueCommand::Ack { name, receipts } => {
            print_settled(&http, url(&name, "ack"), receipts).await?;
        }
        QueueCommand::Dlq { name, purge } => {
            if purge {
                let req = http.delete(url(&name, "dlq"));
                let moved: Moved = success(send(req, "the origin").await?, "dlq purge")
                    .await?
                    .json()
                    .await?;
                println!("purged {} dead letter(s)", moved.count);
                return Ok(());
            }
            let mut after = 0;
            loop {
                let req = http.get(format!("{}?after={after}", url(&name, "dlq")));
                let page: MessagePage = success(send(req, "the origin").await?, "dlq list")
                    .await?
                    .json()
                    .await?;
                for m in &page.messages {
                    println!("{}", serde_json::to_string(m)?);
                }
                match page.messages.last() {
                    Some(last) if page.truncated => after = last.id,
                    _ => break,
                }
            }
        }
        QueueCommand::Replay { name, ids } => {
            let ids = (!ids.is_empty()).then_some(ids);
            let req = http
                .post(url(&name, "dlq/replay"))
                .json(&ReplayRequest { ids });
            let moved: Moved = success(send(req, "the origin").await?, "dlq replay")
                .await?
                .json()
                .await?;
            println!("replayed {} dead letter(s) into {name}", moved.count);
        }
        QueueCommand::Pause { name } => {
            success(
                send(http.post(url(&name, "pause")), "the origin").await?,
                "pause",
            )
            .await?;
            println!("paused {name}: sends are accepted, nothing is delivered");
        }
        QueueCommand::Resume { name } => {
            success(
                send(http.post(url(&name, "resume")), "the origin").await?,
                "resume",
            )
            .await?;
            println!("resumed {name}");
        }
    }
    Ok(())
}

async fn print_settled(
    http: &reqwest::Client,
    url: String,
    receipts: Vec<Receipt>,
) -> anyhow::Result<()> {
    let req = http.post(url).json(&AckRequest { receipts });
    let settled: Settled = success(send(req, "the origin").await?, "ack")
        .await?
        .json()
        .await?;
    println!(
        "acked {}{}",
        settled.settled.len(),
        if settled.stale.is_empty() {
            String::new()
        } else {
            format!(
                "; stale (lease expired, redelivered or gone): {:?}",
                settled.stale
            )
        }
    );
    Ok(())
}
