use super::*;
use waypost_api::queues::QueueStats;

fn name() -> QueueName {
    QueueName::parse("jobs").unwrap()
}

fn run(queues: &mut Queues, now_ms: u64, action: QueueAction) -> Result<QueueReply, Refusal> {
    let command = QueueCommand {
        queue: name(),
        now_ms,
        action,
    };
    command.check().map_err(|e| Refusal::Invalid {
        reason: e.to_string(),
    })?;
    apply(queues, command)
}

fn declared(spec: QueueSpec) -> Queues {
    let mut queues = Queues::new();
    run(&mut queues, 0, QueueAction::Declare { spec }).unwrap();
    queues
}

fn send(queues: &mut Queues, now_ms: u64, messages: Vec<NewMessage>) -> Vec<Sent> {
    match run(queues, now_ms, QueueAction::Send { messages }).unwrap() {
        QueueReply::Sent { messages } => messages,
        other => panic!("{other:?}"),
    }
}

fn lease(queues: &mut Queues, now_ms: u64, max: usize) -> Vec<Delivery> {
    let action = QueueAction::Lease {
        max,
        visibility_ms: None,
        request_id: None,
    };
    match run(queues, now_ms, action).unwrap() {
        QueueReply::Leased { messages } => messages,
        other => panic!("{other:?}"),
    }
}

fn settle(queues: &mut Queues, now_ms: u64, action: QueueAction) -> Settled {
    match run(queues, now_ms, action).unwrap() {
        QueueReply::Settled { settled } => settled,
        other => panic!("{other:?}"),
    }
}

fn ack(queues: &mut Queues, now_ms: u64, receipts: Vec<Receipt>) -> Settled {
    settle(queues, now_ms, QueueAction::Ack { receipts })
}

fn nack(queues: &mut Queues, now_ms: u64, receipt: Receipt, delay_s: Option<u64>) -> Settled {
    let retries = vec![Retry { receipt, delay_s }];
    settle(queues, now_ms, QueueAction::Nack { retries })
}

fn bodies(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.body.as_str()).collect()
}

fn texts(n: usize) -> Vec<NewMessage> {
    (0..n).map(|i| NewMessage::text(format!("m{i}"))).collect()
}

fn stats(queues: &Queues, now_ms: u64) -> QueueStats {
    queues[&name()].stats(&name(), now_ms)
}

#[test]
fn a_leased_message_is_hidden_until_acked_or_its_lease_ends() {
    let mut q = declared(QueueSpec::default());
    send(&mut q, 1_000, texts(3));
    let first = lease(&mut q, 1_000, 2);
    assert_eq!(bodies(&first), ["m0", "m1"]);
    assert_eq!(first[0].receipt.attempt, 1);
    assert_eq!(bodies(&lease(&mut q, 1_000, 10)), ["m2"]);
    assert!(lease(&mut q, 1_000, 10).is_empty());
    let s = stats(&q, 1_000);
    assert_eq!((s.depth, s.in_flight, s.ready), (3, 3, 0));
    let done = ack(&mut q, 2_000, vec![first[0].receipt]);
    assert_eq!(done.settled, [first[0].receipt.id]);
    // The 30 s visibility timeout ends: m1 and m2 come back, m0 does not.
    let again = lease(&mut q, 31_000, 10);
    assert_eq!(bodies(&again), ["m1", "m2"]);
    assert_eq!(again[0].receipt.attempt, 2);
    assert_eq!(stats(&q, 31_000).redeliveries, 2);
}

#[test]
fn a_late_ack_from_an_expired_lease_is_stale_and_deletes_nothing() {
    let mut q = declared(QueueSpec::default());
    send(&mut q, 0, texts(1));
    let old = lease(&mut q, 0, 1)[0].receipt;
    let new = lease(&mut q, 30_000, 1)[0].receipt;
    assert_eq!(new.attempt, 2);
    let late = ack(&mut q, 30_001, vec![old]);
    assert_eq!((late.settled.len(), late.stale), (0, vec![old.id]));
    assert_eq!(stats(&q, 30_001).depth, 1);
    assert_eq!(ack(&mut q, 30_002, vec![new]).settled, [new.id]);
    assert_eq!(stats(&q, 30_002).depth, 0);
    let late = ack(&mut q, 30_003, vec![old]);
    assert_eq!(late.stale, [old.id], "the expired delivery is still stale");
}

#[test]
fn a_retried_ack_answers_the_same_settlement_and_changes_nothing() {
    let mut q = declared(QueueSpec::default());
    send(&mut q, 0, texts(2));
    let r = lease(&mut q, 0, 2);
    let first = ack(&mut q, 10, vec![r[0].receipt]);
    assert_eq!(first.settled, [r[0].receipt.id]);
    // The answer was lost; the consumer retries with both receipts.
    let retry = ack(&mut q, 20, vec![r[0].receipt, r[1].receipt]);
    assert_eq!(retry.settled, [r[0].receipt.id, r[1].receipt.id]);
    assert!(retry.stale.is_empty());
    let s = stats(&q, 20);
    assert_eq!((s.depth, s.acked), (0, 2), "each message acked once");
    // A snapshot keeps the memory; an older snapshot without it loads.
    let json = serde_json::to_value(&q).unwrap();
    let back: Queues = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, q);
    let mut old = json;
    old["jobs"]
        .as_object_mut()
        .unwrap()
        .remove("acked")
        .unwrap();
    let mut old: Queues = serde_json::from_value(old).unwrap();
    assert_eq!(
        ack(&mut old, 30, vec![r[0].receipt]).stale,
        [r[0].receipt.id]
    );
}

#[test]
fn a_retried_nack_answers_the_same_and_schedules_one_retry() {
    let spec = QueueSpec {
        max_attempts: 2,
        ..QueueSpec::default()
    };
    let mut q = declared(spec);
    send(&mut q, 0, texts(1));
    let r1 = lease(&mut q, 0, 1)[0].receipt;
    assert_eq!(nack(&mut q, 0, r1, Some(5)).settled, [r1.id]);
    assert_eq!(nack(&mut q, 1, r1, Some(0)).settled, [r1.id]);
    assert!(
        lease(&mut q, 4_999, 1).is_empty(),
        "the first retry's delay holds"
    );
    let r2 = lease(&mut q, 5_000, 1)[0].receipt;
    assert_eq!(
        nack(&mut q, 5_000, r1, None).stale,
        [r1.id],
        "redelivered since"
    );
    assert_eq!(nack(&mut q, 5_001, r2, None).dead_lettered, [r2.id]);
    assert_eq!(nack(&mut q, 5_002, r2, None).dead_lettered, [r2.id]);
    assert_eq!(stats(&q, 5_002).dead_letters, 1);
}

#[test]
fn nack_backs_off_exponentially_and_the_last_attempt_goes_to_the_dead_letters() {
    let spec = QueueSpec {
        max_attempts: 3,
        ..QueueSpec::default()
    };
    let mut q = declared(spec);
    send(&mut q, 0, texts(1));
    let r1 = lease(&mut q, 0, 1)[0].receipt;
    assert_eq!(nack(&mut q, 0, r1, None).settled, [r1.id]);
    assert!(lease(&mut q, 999, 1).is_empty(), "1 s backoff");
    let r2 = lease(&mut q, 1_000, 1)[0].receipt;
    nack(&mut q, 1_000, r2, None);
    assert!(lease(&mut q, 2_999, 1).is_empty(), "2 s backoff");
    let r3 = lease(&mut q, 3_000, 1)[0].receipt;
    assert_eq!(r3.attempt, 3);
    let last = nack(&mut q, 3_000, r3, Some(0));
    assert_eq!(last.dead_lettered, [r3.id]);
    let s = stats(&q, 3_000);
    assert_eq!((s.depth, s.dead_letters), (0, 1));
}

#[test]
fn a_message_whose_leases_keep_expiring_dies_after_max_attempts() {
    let spec = QueueSpec {
        max_attempts: 2,
        visibility_timeout_s: 1,
        ..QueueSpec::default()
    };
    let mut q = declared(spec);
    send(&mut q, 0, texts(1));
    assert_eq!(lease(&mut q, 0, 1).len(), 1);
    assert_eq!(lease(&mut q, 1_000, 1).len(), 1);
    assert!(lease(&mut q, 2_000, 1).is_empty(), "poison message retired");
    assert_eq!(stats(&q, 2_000).dead_letters, 1);
    let replayed = run(&mut q, 2_000, QueueAction::Replay { ids: None }).unwrap();
    assert_eq!(replayed, QueueReply::Moved { count: 1 });
    let back = lease(&mut q, 2_000, 1);
    assert_eq!((back[0].body.as_str(), back[0].receipt.attempt), ("m0", 1));
}

#[test]
fn without_dead_letters_a_retired_message_is_dropped() {
    let spec = QueueSpec {
        max_attempts: 1,
        dead_letter: false,
        ..QueueSpec::default()
    };
    let mut q = declared(spec);
    send(&mut q, 0, texts(1));
    let r = lease(&mut q, 0, 1)[0].receipt;
    assert_eq!(nack(&mut q, 0, r, None).dead_lettered, [r.id]);
    let s = stats(&q, 0);
    assert_eq!((s.depth, s.dead_letters), (0, 0));
}

#[test]
fn delayed_messages_wait() {
    let mut q = declared(QueueSpec::default());
    let mut late = NewMessage::text("late");
    late.delay_s = 60;
    send(&mut q, 0, vec![late, NewMessage::text("now")]);
    let now = lease(&mut q, 0, 10);
    assert_eq!(bodies(&now), ["now"]);
    assert_eq!(stats(&q, 0).delayed, 1);
    ack(&mut q, 0, vec![now[0].receipt]);
    assert!(lease(&mut q, 59_999, 10).is_empty());
    assert_eq!(bodies(&lease(&mut q, 60_000, 10)), ["late"]);
}

#[test]
fn a_repeated_dedup_id_is_accepted_once_within_the_window() {
    let mut q = declared(QueueSpec::default());
    let with_id = |body: &str| {
        let mut m = NewMessage::text(body);
        m.dedup_id = Some("order-7".into());
        m
    };
    let first = send(&mut q, 0, vec![with_id("a"), with_id("b")]);
    assert!(!first[0].duplicate);
    assert_eq!((first[1].id, first[1].duplicate), (first[0].id, true));
    let again = send(&mut q, 299_999, vec![with_id("c")]);
    assert_eq!((again[0].id, again[0].duplicate), (first[0].id, true));
    assert_eq!(stats(&q, 299_999).depth, 1);
    let after = send(&mut q, 300_000, vec![with_id("d")]);
    assert!(!after[0].duplicate, "the window is over");
    assert_eq!(stats(&q, 300_000).depth, 2);
}

#[test]
fn one_ordering_key_is_delivered_in_order_one_at_a_time() {
    let mut q = declared(QueueSpec::default());
    let keyed = |body: &str, key: &str| {
        let mut m = NewMessage::text(body);
        m.ordering_key = Some(key.into());
        m
    };
    send(
        &mut q,
        0,
        vec![
            keyed("a1", "a"),
            keyed("a2", "a"),
            keyed("b1", "b"),
            NewMessage::text("free"),
            keyed("a3", "a"),
        ],
    );
    let first = lease(&mut q, 0, 10);
    assert_eq!(bodies(&first), ["a1", "b1", "free"]);
    assert!(lease(&mut q, 0, 10).is_empty());
    // A retry keeps the key's place: a2 waits behind a1's next delivery.
    nack(&mut q, 0, first[0].receipt, Some(5));
    assert!(lease(&mut q, 4_999, 10).is_empty());
    let retried = lease(&mut q, 5_000, 10);
    assert_eq!(bodies(&retried), ["a1"]);
    ack(&mut q, 5_000, vec![retried[0].receipt]);
    assert_eq!(bodies(&lease(&mut q, 5_000, 10)), ["a2"]);
}

#[test]
fn limits_refuse_the_whole_send_and_keep_what_is_held() {
    let spec = QueueSpec {
        max_messages: 3,
        ..QueueSpec::default()
    };
    let mut q = declared(spec);
    send(&mut q, 0, texts(2));
    let refused = run(&mut q, 0, QueueAction::Send { messages: texts(2) });
    assert!(
        matches!(refused, Err(Refusal::Exhausted { reason }) if reason.contains("max_messages"))
    );
    assert_eq!(stats(&q, 0).depth, 2);
    let small = QueueSpec {
        max_bytes: 1024,
        ..QueueSpec::default()
    };
    let mut q = declared(small);
    let big = vec![NewMessage::text("x".repeat(2000))];
    assert!(matches!(
        run(&mut q, 0, QueueAction::Send { messages: big }),
        Err(Refusal::Exhausted { .. })
    ));
}

#[test]
fn retention_drops_old_messages_and_dead_letters() {
    let spec = QueueSpec {
        retention_s: 60,
        max_attempts: 1,
        ..QueueSpec::default()
    };
    let mut q = declared(spec);
    send(&mut q, 0, texts(2));
    let r = lease(&mut q, 0, 1)[0].receipt;
    nack(&mut q, 0, r, None);
    send(&mut q, 30_000, texts(1));
    let s = stats(&q, 30_000);
    assert_eq!((s.depth, s.dead_letters), (2, 1));
    assert_eq!(lease(&mut q, 60_000, 10).len(), 1, "only the newer message");
    let s = stats(&q, 60_000);
    assert_eq!((s.depth, s.dead_letters), (1, 0));
}

#[test]
fn a_paused_queue_accepts_sends_and_leases_nothing() {
    let mut q = declared(QueueSpec::default());
    run(&mut q, 0, QueueAction::Pause { paused: true }).unwrap();
    send(&mut q, 0, texts(1));
    assert!(lease(&mut q, 0, 1).is_empty());
    run(&mut q, 0, QueueAction::Pause { paused: false }).unwrap();
    assert_eq!(lease(&mut q, 0, 1).len(), 1);
}

#[test]
fn the_clock_never_runs_back_within_a_queue() {
    let mut q = declared(QueueSpec::default());
    send(&mut q, 100_000, texts(1));
    lease(&mut q, 100_000, 1);
    // A proposer with a slow clock cannot end the lease early.
    assert!(lease(&mut q, 1_000_000 - 990_000, 1).is_empty());
}

#[test]
fn an_unknown_queue_and_bad_input_are_refused() {
    let mut q = Queues::new();
    assert!(matches!(
        run(&mut q, 0, QueueAction::Send { messages: texts(1) }),
        Err(Refusal::NotFound { .. })
    ));
    let mut q = declared(QueueSpec::default());
    let too_many = QueueAction::Lease {
        max: MAX_BATCH + 1,
        visibility_ms: None,
        request_id: None,
    };
    assert!(matches!(
        run(&mut q, 0, too_many),
        Err(Refusal::Invalid { .. })
    ));
}

#[test]
fn a_snapshot_round_trip_rebuilds_the_index() {
    let mut q = declared(QueueSpec::default());
    let mut keyed = texts(3);
    for m in &mut keyed {
        m.ordering_key = Some("k".into());
    }
    send(&mut q, 0, keyed);
    send(&mut q, 0, texts(2));
    lease(&mut q, 0, 1);
    let json = serde_json::to_vec(&q).unwrap();
    let mut back: Queues = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, q);
    assert_eq!(bodies(&lease(&mut back, 0, 10)), ["m0", "m1"]);
}

#[test]
fn a_lease_is_bounded_in_bytes() {
    let mut q = declared(QueueSpec {
        max_bytes: 64 * 1024 * 1024,
        ..QueueSpec::default()
    });
    let big: Vec<NewMessage> = (0..8)
        .map(|_| NewMessage::text("x".repeat(1024 * 1024)))
        .collect();
    send(&mut q, 0, big);
    let got = lease(&mut q, 0, 100);
    assert_eq!(got.len(), LEASE_BYTES / (1024 * 1024));
}

#[test]
fn a_lease_retried_with_its_request_id_gets_the_same_messages() {
    let mut q = declared(QueueSpec::default());
    send(&mut q, 0, texts(3));
    let leased = |q: &mut Queues, now_ms, id: &str| match run(
        q,
        now_ms,
        QueueAction::Lease {
            max: 2,
            visibility_ms: None,
            request_id: Some(id.into()),
        },
    )
    .unwrap()
    {
        QueueReply::Leased { messages } => messages,
        other => panic!("{other:?}"),
    };
    let first = leased(&mut q, 0, "req-1");
    assert_eq!(bodies(&first), ["m0", "m1"]);
    // The answer was lost; the retry sees the same deliveries.
    let again = leased(&mut q, 10, "req-1");
    assert_eq!(again, first);
    // Once one is acked, only the other comes back.
    ack(&mut q, 20, vec![first[0].receipt]);
    assert_eq!(bodies(&leased(&mut q, 30, "req-1")), ["m1"]);
    // A new id leases the rest.
    assert_eq!(bodies(&leased(&mut q, 40, "req-2")), ["m2"]);
    // The id is forgotten once its lease ended.
    let later = leased(&mut q, 30_000, "req-1");
    assert_eq!(later[0].receipt.attempt, 2, "a fresh lease: {later:?}");
}
