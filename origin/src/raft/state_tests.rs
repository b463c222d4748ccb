//! Unit tests of [`super::State::apply`]: events, validation, preconditions.

use super::*;

fn kv(key: &str, value: &str) -> Command {
    kv_if(key, value, None)
}

fn kv_if(key: &str, value: &str, precondition: Option<Conditions>) -> Command {
    Command::KvPut {
        namespace: "n".into(),
        key: key.into(),
        value: value.into(),
        precondition,
    }
}

/// A valid content address made of one repeated hex digit.
fn sha(digit: char) -> String {
    digit.to_string().repeat(64)
}

fn asset_at(path: &str, sha: &str, size: u64, at: u64) -> Command {
    Command::PutAsset {
        path: path.into(),
        meta: AssetMeta {
            format: crate::store::meta::FORMAT,
            sha256: sha.into(),
            size,
            content_type: "text/plain".into(),
            cache_control: None,
            surrogate_keys: vec![],
            last_modified: at,
        },
        precondition: None,
    }
}

fn asset(sha: &str, at: u64) -> Command {
    asset_at("a.txt", sha, 1, at)
}

fn create_only() -> Option<Conditions> {
    Some(Conditions {
        if_none_match: Some("*".into()),
        ..Conditions::default()
    })
}

fn if_match(etag: &str) -> Option<Conditions> {
    Some(Conditions {
        if_match: Some(format!("\"{etag}\"")),
        ..Conditions::default()
    })
}

#[test]
fn same_bytes_keep_last_modified() {
    let mut s = State::default();
    assert!(!s.apply(asset(&sha('a'), 10)).existed);
    let again = s.apply(asset(&sha('a'), 20));
    assert!(again.existed);
    assert_eq!(again.asset.unwrap().last_modified, 10);
    assert_eq!(
        s.apply(asset(&sha('b'), 30)).asset.unwrap().last_modified,
        30
    );
}

#[test]
fn invalid_commands_change_nothing_on_any_replica() {
    let mut s = State::default();
    s.apply(kv("k", "v"));
    let before = s.clone();
    let bad = [
        asset("\"", 1),
        asset(&sha('a'), u64::MAX),
        kv("", "v"),
        Command::PutPlugin {
            name: "Bad_Name".into(),
            sha256: sha('a'),
            size: 1,
        },
    ];
    for command in bad {
        let outcome = s.apply(command.clone());
        assert!(
            matches!(outcome.refused, Some(Refusal::Invalid { .. })),
            "{command:?}: {outcome:?}"
        );
        assert_eq!(outcome.seq, None);
        assert_eq!(s, before, "{command:?} changed the state");
    }
}

#[test]
fn a_blob_has_one_size_while_anything_points_at_it() {
    let mut s = State::default();
    s.apply(asset_at("a", &sha('c'), 10, 1));
    let other = s.apply(asset_at("b", &sha('c'), 11, 1));
    assert!(
        matches!(&other.refused, Some(Refusal::Invalid { reason }) if reason.contains("10 bytes")),
        "{other:?}"
    );
    let plugin = s.apply(Command::PutPlugin {
        name: "p".into(),
        sha256: sha('c'),
        size: 12,
    });
    assert!(plugin.refused.is_some(), "{plugin:?}");
    assert_eq!(s.apply(asset_at("b", &sha('c'), 10, 1)).refused, None);
    // Once nothing points at it, the address is free again.
    s.apply(Command::DeleteAsset { path: "a".into() });
    s.apply(asset_at("b", &sha('d'), 1, 1));
    assert_eq!(s.apply(asset_at("c", &sha('c'), 11, 1)).refused, None);
}

#[test]
fn the_blob_index_is_rebuilt_when_a_state_loads() {
    let mut s = State::default();
    s.apply(asset_at("a", &sha('c'), 10, 1));
    let mut loaded: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(loaded, s);
    assert!(
        loaded
            .apply(asset_at("b", &sha('c'), 9, 1))
            .refused
            .is_some()
    );
}

#[test]
fn create_only_writes_have_one_winner() {
    let mut s = State::default();
    let first = s.apply(kv_if("k", "one", create_only()));
    assert_eq!(first.refused, None);
    let second = s.apply(kv_if("k", "two", create_only()));
    assert_eq!(second.refused, Some(Refusal::PreconditionFailed));
    assert_eq!(s.kv["n"]["k"], "one");

    let put = |s: &mut State, digit| {
        let Command::PutAsset { path, meta, .. } = asset(&sha(digit), 5) else {
            unreachable!()
        };
        s.apply(Command::PutAsset {
            path,
            meta,
            precondition: create_only(),
        })
    };
    assert_eq!(put(&mut s, 'a').refused, None);
    assert_eq!(put(&mut s, 'b').refused, Some(Refusal::PreconditionFailed));
    assert_eq!(s.assets["a.txt"].sha256, sha('a'));
}

#[test]
fn if_match_is_compare_and_set_on_the_value() {
    let mut s = State::default();
    s.apply(kv("k", "one"));
    let etag = conditions::kv_etag("one");
    assert_eq!(s.apply(kv_if("k", "two", if_match(&etag))).refused, None);
    let stale = s.apply(kv_if("k", "three", if_match(&etag)));
    assert_eq!(stale.refused, Some(Refusal::PreconditionFailed));
    assert_eq!(s.kv["n"]["k"], "two");
    let delete = s.apply(Command::KvDelete {
        namespace: "n".into(),
        key: "k".into(),
        precondition: if_match(&etag),
    });
    assert_eq!(delete.refused, Some(Refusal::PreconditionFailed));
    assert_eq!(s.kv["n"]["k"], "two");
}

#[test]
fn events_resume_without_gaps_or_duplicates() {
    let mut s = State::default();
    for i in 0..5 {
        s.apply(kv(&i.to_string(), "v"));
    }
    let first = s.events_after(0, 2).unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let rest = s.events_after(2, 100).unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert!(s.events_after(5, 100).unwrap().is_empty());
}

#[test]
fn event_pages_are_bounded_in_bytes() {
    let mut s = State::default();
    let path = "p".repeat(crate::raft::validate::MAX_PURGE_ITEM);
    for _ in 0..3 {
        s.apply(Command::Purge {
            paths: vec![path.clone(); 300],
            surrogate_keys: vec![],
            soft: false,
        });
    }
    // Each event is ~2.4 MiB of JSON: one per page, and the next page
    // resumes after it.
    let page = s.events_after(0, 1000).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    let page = s.events_after(1, 1000).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
}

#[test]
fn trimmed_events_report_a_gap() {
    let mut s = State::default();
    let kept = 100;
    s.set_feed_retention(super::Retention {
        events: kept,
        bytes: u64::MAX,
    });
    for i in 0..kept + 3 {
        s.apply(kv(&i.to_string(), "v"));
    }
    assert!(s.events_after(0, 1).is_none());
    assert_eq!(s.events_after(3, 1).unwrap()[0].seq, 4);
}

#[test]
fn plugin_versions_are_events_with_the_edge_contract() {
    let mut s = State::default();
    let put = |sha: &str| Command::PutPlugin {
        name: "hello".into(),
        sha256: sha.into(),
        size: 8,
    };
    assert!(!s.apply(put(&sha('a'))).existed);
    assert!(s.apply(put(&sha('b'))).existed);
    assert_eq!(s.plugins["hello"].sha256, sha('b'));
    let classes = [waypost_api::feed::EventClass::Content];
    let event = serde_json::to_value(&s.read_feed(1, &classes, 1).events[0]).unwrap();
    assert_eq!(
        event,
        serde_json::json!({"seq": 2, "type": "plugin_version", "name": "hello", "sha256": sha('b'), "size": 8})
    );
    let deleted = s.apply(Command::DeletePlugin {
        name: "hello".into(),
    });
    assert_eq!(deleted.seq, Some(3));
    assert!(s.plugins.is_empty());
    let again = s.apply(Command::DeletePlugin {
        name: "hello".into(),
    });
    assert_eq!(again, Outcome::default());
}

#[test]
fn state_written_before_the_plugin_registry_still_loads() {
    let old = r#"{"assets":{},"kv":{"n":{"k":"v"}},"events":[],"last_seq":4}"#;
    let s: State = serde_json::from_str(old).unwrap();
    assert_eq!(s.last_seq, 4);
    assert!(s.plugins.is_empty());
}

#[test]
fn deleting_nothing_produces_no_event() {
    let mut s = State::default();
    let out = s.apply(Command::KvDelete {
        namespace: "n".into(),
        key: "k".into(),
        precondition: None,
    });
    assert_eq!(out, Outcome::default());
    assert_eq!(s.last_seq, 0);
}

#[test]
fn the_first_incarnation_of_a_node_stays() {
    let mut s = State::default();
    let register = |incarnation| Command::RegisterIncarnation {
        node_id: 2,
        incarnation,
    };
    assert!(!s.apply(register(7)).existed);
    assert!(s.apply(register(9)).existed);
    assert_eq!(s.incarnations[&2], 7);
    assert!(s.apply(register(0)).refused.is_some());
    let old = r#"{"assets":{},"kv":{},"events":[],"last_seq":0}"#;
    let loaded: State = serde_json::from_str(old).unwrap();
    assert!(loaded.incarnations.is_empty());
}
