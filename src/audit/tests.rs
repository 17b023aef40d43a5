//! Store tests, run against SQLite always and against PostgreSQL when asked: the PostgreSQL
//! tests are `#[ignore]`d (run them with `-- --include-ignored` and `VCF_TEST_POSTGRES_URL` set;
//! CI does) and fail, rather than pass silently, when the variable is missing.

use super::feedback::parse_feedback;
use super::query::{self, Bucket, Filters, Page};
use super::testing::{fresh_postgres_db, settings_in};
use super::*;
use serde_json::json;
use vcf_engine::knowledge::Category;

/// A fresh PostgreSQL database for an ignored-by-default test; a missing
/// `VCF_TEST_POSTGRES_URL` fails the test instead of skipping it.
async fn required_postgres_db() -> String {
    fresh_postgres_db().await.unwrap_or_else(|| {
        panic!(
            "this test needs PostgreSQL: set {} (see docs/operations.md)",
            testing::POSTGRES_ENV
        )
    })
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                $body(settings_in(dir.path(), None)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL (VCF_TEST_POSTGRES_URL)"]
            async fn postgres() {
                let url = required_postgres_db().await;
                let dir = tempfile::tempdir().unwrap();
                $body(settings_in(dir.path(), Some(url))).await;
            }
        }
    };
}

both_backends!(round_trip, round_trip_body);
both_backends!(feedback_idempotent, feedback_idempotent_body);
both_backends!(summary_matches, summary_matches_body);
both_backends!(purge, purge_body);
both_backends!(pseudonyms, pseudonyms_body);
both_backends!(export_pages, export_pages_body);
both_backends!(feedback_truth, feedback_truth_body);

/// SQLite: the writer's own connection (issue 12) commits durably (`synchronous = FULL` on the
/// WAL database) and leaves checkpoints to the checkpointer thread; a commit answers
/// `Committed` with the rows in the store, read back through the sqlx pool; and the WAL is
/// checkpointed into the database file without any other connection's help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writer_connection_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&settings_in(dir.path(), None))
        .await
        .unwrap();
    let data = seed::generate(5, 1, now(), 3).await.unwrap();
    for call in &data.calls {
        assert_eq!(
            store.record_hook_call(call.clone()).await,
            Delivery::Committed
        );
    }
    let db = store.db().unwrap();
    let (synchronous, autocheckpoint) = db.sqlite_writer_settings().unwrap().unwrap();
    assert_eq!(synchronous, 2, "synchronous = FULL");
    assert_eq!(autocheckpoint, 0, "no checkpoint inside a commit");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let orders: usize = data.calls.iter().map(|c| c.orders.len()).sum();
    let (calls, stored_orders, _) = db.counts().await.unwrap();
    assert_eq!(
        (calls as usize, stored_orders as usize),
        (data.calls.len(), orders)
    );
    store.shutdown().await;
}

/// Group commit wait (issue 12): while another hook call is being evaluated, a submitted call's
/// commit waits for it, and both are committed in one transaction; a lone call with nothing in
/// flight is committed at once (the wait is ten minutes here, so waiting would hang the test);
/// and a call that never submits holds a commit no longer than the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_waits_for_calls_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_in(dir.path(), None);
    settings.audit_group_commit_wait_us = 600_000_000;
    let store = AuditStore::open(&settings).await.unwrap();
    let data = seed::generate(7, 1, now(), 5).await.unwrap();
    fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(Duration::from_secs(60), f)
    }

    // Nothing in flight: committed without waiting, one transaction.
    let lone = bounded(store.record_hook_call(data.calls[0].clone()))
        .await
        .expect("a lone call is committed at once");
    assert_eq!(lone, Delivery::Committed);
    assert_eq!(store.metrics().commit_batches, 1);

    // A second call is being evaluated: the first one's commit waits for it.
    let second = store.call_started();
    let first = tokio::spawn({
        let (s, c) = (store.clone(), data.calls[1].clone());
        async move { s.record_hook_call(c).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "committed while a call was in flight");
    assert_eq!(store.metrics().records_committed, 1);
    let both = bounded(store.record_evaluated_call(data.calls[2].clone(), second))
        .await
        .unwrap();
    assert_eq!(both, Delivery::Committed);
    assert_eq!(first.await.unwrap(), Delivery::Committed);
    let m = store.metrics();
    assert_eq!((m.records_committed, m.commit_batches), (3, 2));

    // Several calls in flight: the commit waits until the last of them has queued its records
    // (the writer sleeps meanwhile; it is woken when the count drops to zero) and takes all.
    let guards: Vec<_> = (0..3).map(|_| store.call_started()).collect();
    let waiting = tokio::spawn({
        let (s, c) = (store.clone(), data.calls[3].clone());
        async move { s.record_hook_call(c).await }
    });
    let mut submitted = vec![];
    for (guard, call) in guards.into_iter().zip(&data.calls[4..7]) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "committed while a call was in flight"
        );
        submitted.push(tokio::spawn({
            let (s, c) = (store.clone(), call.clone());
            async move { s.record_evaluated_call(c, guard).await }
        }));
    }
    let waited = bounded(waiting)
        .await
        .expect("committed once the last call queued");
    assert_eq!(waited.unwrap(), Delivery::Committed);
    for s in submitted {
        assert_eq!(s.await.unwrap(), Delivery::Committed);
    }
    let m = store.metrics();
    assert_eq!((m.records_committed, m.commit_batches), (7, 3));
    store.shutdown().await;

    // A call that never submits (it failed) holds the commit only for the wait.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_in(dir.path(), None);
    settings.audit_group_commit_wait_us = 50_000;
    let store = AuditStore::open(&settings).await.unwrap();
    let _stuck = store.call_started();
    let late = bounded(store.record_hook_call(data.calls[3].clone()))
        .await
        .expect("committed once the wait is over");
    assert_eq!(late, Delivery::Committed);
    store.shutdown().await;
}

/// The checkpointer thread copies committed pages into the database file while the store is
/// open (the writer connection never checkpoints): after more than 512 records the file grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpointer_backfills_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&settings_in(dir.path(), None))
        .await
        .unwrap();
    let file = dir.path().join("audit.sqlite");
    let empty = std::fs::metadata(&file).unwrap().len();
    let data = seed::generate(600, 20, now(), 4).await.unwrap();
    for call in &data.calls {
        assert_eq!(
            store.record_hook_call(call.clone()).await,
            Delivery::Committed
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut size = empty;
    while size <= empty + 100_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        size = std::fs::metadata(&file).unwrap().len();
    }
    assert!(
        size > empty + 100_000,
        "database file {empty} -> {size} bytes: nothing checkpointed"
    );
    store.shutdown().await;
}

/// Issue 9: an accept naming a suggestion the card never carried is stored with
/// `suggestion_known = false`; an accept of an issued suggestion with `true`, also when the
/// feedback reached the store before its (spooled) evaluation.
async fn feedback_truth_body(settings: crate::configuration::Settings) {
    let store = AuditStore::open(&settings).await.unwrap();
    let data = seed::generate(30, 1, now(), 5).await.unwrap();
    let mut calls = data.calls.iter().filter(|c| {
        c.orders
            .iter()
            .any(|o| o.card_uuid.is_some() && !o.suggestion_uuids.is_empty())
    });
    let stored_first = calls.next().expect("a call with suggestions").clone();
    let spooled_later = calls.next().expect("a second one").clone();
    store.record_hook_call(stored_first.clone()).await;
    let card_of = |c: &records::HookCallRecord| {
        let o = c
            .orders
            .iter()
            .find(|o| !o.suggestion_uuids.is_empty())
            .unwrap();
        (o.card_uuid.clone().unwrap(), o.suggestion_uuids[0].clone())
    };
    let (card, issued) = card_of(&stored_first);
    let (late_card, late_issued) = card_of(&spooled_later);
    let body = json!({"feedback": [
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": issued}],
         "outcomeTimestamp": "2026-01-01T10:00:00Z"},
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "never-issued"}],
         "outcomeTimestamp": "2026-01-01T10:01:00Z"},
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:02:00Z"},
        {"card": late_card, "outcome": "accepted", "acceptedSuggestions": [{"id": late_issued}],
         "outcomeTimestamp": "2026-01-01T10:03:00Z"}
    ]});
    let entries = parse_feedback(&body, "svc", now()).unwrap();
    assert_eq!(store.record_feedback(entries).await, Delivery::Committed);
    let db = store.db().unwrap();
    let known = |card: String| async move {
        let (_, items) = query::list_feedback(
            db,
            &query::FeedbackFilters {
                card: Some(card),
                ..Default::default()
            },
            Page {
                limit: 10,
                offset: 0,
            },
        )
        .await
        .unwrap();
        let mut v: Vec<(String, Option<bool>)> = items
            .into_iter()
            .map(|f| (f.outcome_timestamp, f.suggestion_known))
            .collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    };
    assert_eq!(known(card.clone()).await, [Some(true), Some(false), None]);
    assert_eq!(
        known(late_card.clone()).await,
        [Some(false)],
        "card not stored yet"
    );
    // The evaluation arrives from the spool: the accept becomes known.
    let late =
        records::StoredCall::from_record(spooled_later, &pseudonym::Pseudonymizer::new(None));
    db.insert_batch(&[&records::SpoolRecord::Call(late)], "spooled", 0)
        .await
        .unwrap();
    assert_eq!(known(late_card).await, [Some(true)]);
    let s = query::summary(db, &Filters::default(), Bucket::Day)
        .await
        .unwrap();
    assert_eq!(s["feedback"]["accepted_entries_unknown_suggestion"], 1);
    assert_eq!(s["feedback"]["cards_accepted_known"], 2);
    store.shutdown().await;
}

async fn export_pages_body(settings: crate::configuration::Settings) {
    let store = AuditStore::open(&settings).await.unwrap();
    let mut data = seed::generate(300, 8, now(), 2).await.unwrap();
    // Same millisecond for several calls: the cursor must still not skip or repeat rows.
    let t = data.calls[0].received_at;
    for c in data.calls.iter_mut().take(40) {
        c.received_at = t;
    }
    let orders: usize = data.calls.iter().map(|c| c.orders.len()).sum();
    seed::seed_store(&store, data).await.unwrap();
    let db = store.db().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut after = None;
    let mut last_ms = i64::MIN;
    loop {
        let page = query::export_page(db, &Filters::default(), after.as_ref(), 37)
            .await
            .unwrap();
        for it in &page {
            assert!(it.received_at_ms >= last_ms, "oldest first");
            last_ms = it.received_at_ms;
            assert!(
                seen.insert((it.call_id.clone(), it.order_index)),
                "no repeats"
            );
        }
        match page.last() {
            Some(l) if page.len() == 37 => {
                after = Some((l.received_at_ms, l.call_id.clone(), l.order_index))
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), orders);
    store.shutdown().await;
}

async fn round_trip_body(settings: crate::configuration::Settings) {
    let store = AuditStore::open(&settings).await.unwrap();
    assert!(store.ready());
    let data = seed::generate(40, 1, now(), 3).await.unwrap();
    let orders: usize = data.calls.iter().map(|c| c.orders.len()).sum();
    let first = data.calls[0].clone();
    let with_suggestions = data
        .calls
        .iter()
        .flat_map(|c| &c.orders)
        .find(|o| !o.suggestions.is_empty())
        .cloned()
        .expect("an order with suggestions");
    let (calls, _) = seed::seed_store(&store, data).await.unwrap();
    assert_eq!(calls, 40);
    let m = store.metrics();
    assert!(m.records_committed >= 40);
    assert_eq!(m.undelivered, 0);
    let (total, items) = query::list_evaluations(
        store.db().unwrap(),
        &Filters {
            hook_instance: Some(first.hook_instance.clone()),
            ..Filters::default()
        },
        Page {
            limit: 10,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(total as usize, first.orders.len());
    let o = &first.orders[0];
    let it = &items[0];
    assert_eq!(it.order_ref, o.order_ref);
    assert_eq!(it.order_codes, o.order_codes);
    assert_eq!(it.rating, o.rating.map(i64::from));
    assert_eq!(it.chosen_variant, o.chosen_variant);
    assert_eq!(it.card_uuid, o.card_uuid);
    assert_eq!(it.suggestion_uuids, o.suggestion_uuids);
    assert_eq!(it.consult_id, o.consult_id);
    assert_eq!(it.user_id, first.user_id);
    assert_eq!(it.delivery, "committed");
    assert_eq!(
        it.received_at_ms,
        records::epoch_ms(first.received_at),
        "time stored to the millisecond"
    );
    let (total, page) = query::list_evaluations(
        store.db().unwrap(),
        &Filters::default(),
        Page {
            limit: 7,
            offset: 7,
        },
    )
    .await
    .unwrap();
    assert_eq!(total as usize, orders);
    assert_eq!(page.len(), 7);
    let (_, items) = query::list_evaluations(
        store.db().unwrap(),
        &Filters {
            card: with_suggestions.card_uuid.clone(),
            ..Filters::default()
        },
        Page {
            limit: 1,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        items[0].suggestions.len(),
        with_suggestions.suggestions.len()
    );
    assert_eq!(
        items[0].suggestions[0]["uuid"],
        with_suggestions.suggestions[0].uuid.as_str()
    );
    assert_eq!(items[0].safety_notes, with_suggestions.safety_notes);
    // A call without orders still gets its call row.
    let mut empty = first.clone();
    empty.orders.clear();
    empty.hook_instance = "no-orders".into();
    assert_eq!(store.record_hook_call(empty).await, Delivery::Committed);
    let (c, o, _) = store.db().unwrap().counts().await.unwrap();
    assert_eq!(c, 41);
    assert_eq!(o as usize, orders);
    let s = query::summary(store.db().unwrap(), &Filters::default(), Bucket::Day)
        .await
        .unwrap();
    assert_eq!(s["calls"], 41, "calls without orders are counted");
    assert_eq!(s["delivery"]["committed"], 41);
    store.shutdown().await;
}

async fn feedback_idempotent_body(settings: crate::configuration::Settings) {
    let store = AuditStore::open(&settings).await.unwrap();
    let body = json!({"feedback": [
        {"card": "c-1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s-1"}],
         "outcomeTimestamp": "2026-01-01T10:00:00Z"},
        {"card": "c-1", "outcome": "overridden", "overrideReason": {"userComment": "no"},
         "outcomeTimestamp": "2026-01-01T10:01:00Z"}
    ]});
    let entries = parse_feedback(&body, "svc", now()).unwrap();
    assert_eq!(
        store.record_feedback(entries.clone()).await,
        Delivery::Committed
    );
    assert_eq!(
        store.record_feedback(entries.clone()).await,
        Delivery::Committed
    );
    assert_eq!(
        store.record_feedback(entries[..1].to_vec()).await,
        Delivery::Committed
    );
    let (_, _, f) = store.db().unwrap().counts().await.unwrap();
    assert_eq!(f, 2, "each distinct entry stored once");
    store.shutdown().await;
}

async fn summary_matches_body(settings: crate::configuration::Settings) {
    let store = AuditStore::open(&settings).await.unwrap();
    let data = seed::generate(300, 42, now(), 10).await.unwrap();
    let orders: Vec<_> = data.calls.iter().flat_map(|c| c.orders.clone()).collect();
    let feedback = data.feedback.clone();
    seed::seed_store(&store, data).await.unwrap();
    let s = query::summary(store.db().unwrap(), &Filters::default(), Bucket::Day)
        .await
        .unwrap();
    let rated = orders.iter().filter(|o| o.rating.is_some()).count() as i64;
    let not_app = orders
        .iter()
        .filter(|o| o.category == Some(Category::UsuallyNotAppropriate))
        .count() as i64;
    assert_eq!(s["calls"], 300);
    assert_eq!(s["orders"], orders.len() as i64);
    assert_eq!(s["orders_rated"], rated);
    assert_eq!(s["not_appropriate"], not_app);
    let v1 = s["by_variant"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variant"] == "V1")
        .unwrap();
    let v1_orders = orders
        .iter()
        .filter(|o| o.chosen_variant.as_deref() == Some("V1"))
        .count() as i64;
    assert_eq!(v1["orders"], v1_orders);
    let overridden_cards: std::collections::BTreeSet<String> = feedback
        .iter()
        .flat_map(|(_, b)| b["feedback"].as_array().unwrap().clone())
        .filter(|e| e["outcome"] == "overridden")
        .map(|e| e["card"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        s["feedback"]["cards_overridden"],
        overridden_cards.len() as i64
    );
    assert_eq!(s["feedback"]["entries"], feedback.len() as i64);
    assert_eq!(s["feedback"]["unlinked_entries"], 0);
    let reasons: i64 = s["override_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .sum();
    assert!(reasons as usize <= overridden_cards.len() && reasons > 0);
    let points: i64 = s["timeline"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["usually_appropriate"].as_i64().unwrap()
                + p["may_be_appropriate"].as_i64().unwrap()
                + p["usually_not_appropriate"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(points, rated);
    // A filter narrows every figure.
    let f = Filters {
        variant: Some("V1".into()),
        ..Filters::default()
    };
    let s1 = query::summary(store.db().unwrap(), &f, Bucket::Week)
        .await
        .unwrap();
    assert_eq!(s1["orders"], v1_orders);
    assert_eq!(s1["by_variant"].as_array().unwrap().len(), 1);
    store.shutdown().await;
}

async fn purge_body(settings: crate::configuration::Settings) {
    let store = AuditStore::open(&settings).await.unwrap();
    let t = now();
    let mut data = seed::generate(20, 3, t - time::Duration::days(100), 1)
        .await
        .unwrap();
    let recent = seed::generate(10, 4, t, 1).await.unwrap();
    data.calls.extend(recent.calls);
    data.feedback.clear();
    seed::seed_store(&store, data).await.unwrap();
    let (calls, _, _) = store
        .purge_before(t - time::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(calls, 20);
    let (c, _, _) = store.db().unwrap().counts().await.unwrap();
    assert_eq!(c, 10);
    store.shutdown().await;
}

async fn pseudonyms_body(mut settings: crate::configuration::Settings) {
    settings.audit_pseudonym_key = Some("a-test-key-of-enough-length".into());
    let store = AuditStore::open(&settings).await.unwrap();
    let data = seed::generate(5, 9, now(), 1).await.unwrap();
    let call = data.calls[0].clone();
    seed::seed_store(&store, data).await.unwrap();
    let params = vec![("user".to_owned(), call.user_id.clone())];
    let f = Filters::parse(&params, store.pseudonymizer(), &[]).unwrap();
    let (total, items) = query::list_evaluations(
        store.db().unwrap(),
        &f,
        Page {
            limit: 50,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert!(total >= 1);
    for it in &items {
        assert!(pseudonym::is_pseudonym(&it.user_id));
        assert!(pseudonym::is_pseudonym(&it.patient_id));
        assert_ne!(it.patient_id, call.patient_id);
    }
    // Nothing un-pseudonymized reached the database file.
    store.shutdown().await;
    if let db::AuditDbLocation::Sqlite(path) =
        db::AuditDbLocation::parse(&settings.audit_db).unwrap()
    {
        let bytes = std::fs::read(path).unwrap();
        let needle = call.patient_id.as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

/// The store is locked by another writer: hook calls are answered from the spool within the
/// write timeout, and the spool is replayed once the lock is gone. Nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_outage_spools_and_replays() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_in(dir.path(), None);
    settings.audit_write_timeout_ms = 300;
    let store = AuditStore::open(&settings).await.unwrap();
    let db_path = dir.path().join("audit.sqlite");
    let mut blocker =
        sqlx::AnyConnection::connect(&format!("sqlite://{}", db_path.to_string_lossy()))
            .await
            .unwrap();
    blocker.execute("BEGIN EXCLUSIVE").await.unwrap();

    let data = seed::generate(30, 5, now(), 1).await.unwrap();
    let expected: Vec<String> = data.calls.iter().map(|c| c.hook_instance.clone()).collect();
    let started = std::time::Instant::now();
    let deliveries =
        futures_util::future::join_all(data.calls.into_iter().map(|c| store.record_hook_call(c)))
            .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        deliveries.iter().all(|d| *d == Delivery::Spooled),
        "{deliveries:?}"
    );
    let m = store.metrics();
    assert_eq!(m.undelivered, 30);
    assert!(!store.ready());
    assert_eq!(m.spool_backlog, 30);

    blocker.execute("COMMIT").await.unwrap();
    drop(blocker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.metrics().spool_backlog > 0 || !store.ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            store.metrics()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for hi in &expected {
        let (n, items) = query::list_evaluations(
            store.db().unwrap(),
            &Filters {
                hook_instance: Some(hi.clone()),
                ..Filters::default()
            },
            Page {
                limit: 5,
                offset: 0,
            },
        )
        .await
        .unwrap();
        assert!(n >= 1, "{hi} lost");
        assert_eq!(items[0].delivery, "spooled");
    }
    assert_eq!(store.metrics().records_replayed, 30);
    assert_eq!(store.metrics().dead_letter, 0);
    store.shutdown().await;
}

/// A crash after spooling: the next start replays the spool (idempotently, also records that
/// were both committed and spooled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_is_replayed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path(), None);
    let data = seed::generate(12, 6, now(), 1).await.unwrap();
    let p = pseudonym::Pseudonymizer::new(None);
    let recs: Vec<SpoolRecord> = data
        .calls
        .into_iter()
        .map(|c| SpoolRecord::Call(StoredCall::from_record(c, &p)))
        .collect();
    {
        let mut spool = spool::Spool::open(&settings.audit_spool_dir).unwrap();
        spool.append(&recs.iter().collect::<Vec<_>>()).unwrap();
        // The same records twice (e.g. committed, then spooled after a timeout).
        spool
            .append(&recs.iter().take(4).collect::<Vec<_>>())
            .unwrap();
    }
    let store = AuditStore::open(&settings).await.unwrap();
    assert!(store.flush().await);
    let (c, _, _) = store.db().unwrap().counts().await.unwrap();
    assert_eq!(c, 12);
    assert_eq!(store.metrics().spool_backlog, 0);
    store.shutdown().await;
}

#[tokio::test]
async fn invalid_audit_db_fails_start_but_unreachable_postgres_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let bad = settings_in(dir.path(), Some("mysql://x/y".into()));
    assert!(AuditStore::open(&bad).await.is_err());
    // Nothing listens on port 1.
    let mut down = settings_in(dir.path(), Some("postgres://u@127.0.0.1:1/audit".into()));
    down.audit_write_timeout_ms = 200;
    let store = AuditStore::open(&down).await.unwrap();
    assert!(!store.ready());
    let data = seed::generate(3, 1, now(), 1).await.unwrap();
    for c in data.calls {
        assert_eq!(store.record_hook_call(c).await, Delivery::Spooled);
    }
    assert_eq!(store.metrics().spool_backlog, 3);
    store.shutdown().await;
    // The spool survives for the next start.
    let spool = spool::Spool::open(&down.audit_spool_dir).unwrap();
    assert_eq!(spool.backlog(), 3);
}

/// Write throughput with group commit (run with `--ignored --nocapture`; figures in
/// BENCHMARKS.md). `VCF_BENCH_CALLS` sets the number of calls (default 20000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn audit_write_throughput() {
    let n: usize = std::env::var("VCF_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = fresh_postgres_db().await {
        backends.push(("postgres", Some(url)));
    }
    for (name, url) in backends {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&settings_in(dir.path(), url))
            .await
            .unwrap();
        let data = seed::generate(n, 11, now(), 30).await.unwrap();
        let orders: usize = data.calls.iter().map(|c| c.orders.len()).sum();
        // Concurrent callers (like concurrent hook requests): group commit.
        let store2 = store.clone();
        let started = std::time::Instant::now();
        let mut tasks = vec![];
        let per = n.div_ceil(64);
        for chunk in data.calls.chunks(per).map(|c| c.to_vec()) {
            let s = store2.clone();
            tasks.push(tokio::spawn(async move {
                for c in chunk {
                    assert_eq!(s.record_hook_call(c).await, Delivery::Committed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let m = store.metrics();
        // One caller at a time: one transaction (and fsync) per call.
        let seq = seed::generate(500, 12, now(), 30).await.unwrap();
        let t0 = std::time::Instant::now();
        for c in seq.calls {
            store.record_hook_call(c).await;
        }
        let seq_secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "audit write throughput {name}: {n} calls ({orders} order rows) from 64 concurrent callers in {secs:.2} s = {:.0} calls/s, {:.0} order rows/s, {} transactions (avg {:.1} calls each); sequential single caller: {:.0} calls/s",
            n as f64 / secs,
            orders as f64 / secs,
            m.commit_batches,
            n as f64 / m.commit_batches as f64,
            500.0 / seq_secs
        );
        store.shutdown().await;
    }
}

/// A spooled record the store refuses outright goes to the dead-letter file, the others of its
/// batch are stored, and the spool does not get stuck. PostgreSQL refuses the NUL byte in the
/// second entry's comment by itself; on SQLite (which stores NUL bytes) a trigger installed by the
/// test plays the refusing store (`RAISE(ABORT)` is a constraint error, as a bad value would be).
async fn dead_letter_body(settings: crate::configuration::Settings) {
    let sqlite = !settings.audit_db.starts_with("postgres");
    if sqlite {
        let store = AuditStore::open(&settings).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_c2 BEFORE INSERT ON audit_feedback \
             WHEN NEW.card_uuid = 'c-2' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .execute(&store.db().unwrap().pool)
        .await
        .unwrap();
        store.shutdown().await;
    }
    let good = parse_feedback(
        &json!({"feedback": [
            {"card": "c-1", "outcome": "overridden", "overrideReason": {"userComment": "fine"},
             "outcomeTimestamp": "2026-01-01T10:00:00Z"},
            {"card": "c-2", "outcome": "overridden", "overrideReason": {"userComment": "bad \u{0} byte"},
             "outcomeTimestamp": "2026-01-01T10:00:00Z"},
            {"card": "c-3", "outcome": "overridden", "overrideReason": {"userComment": "also fine"},
             "outcomeTimestamp": "2026-01-01T10:00:00Z"}
        ]}),
        "svc",
        now(),
    )
    .unwrap();
    {
        let mut spool = spool::Spool::open(&settings.audit_spool_dir).unwrap();
        let recs: Vec<SpoolRecord> = good.into_iter().map(SpoolRecord::Feedback).collect();
        spool.append(&recs.iter().collect::<Vec<_>>()).unwrap();
    }
    let store = AuditStore::open(&settings).await.unwrap();
    assert!(store.flush().await);
    let m = store.metrics();
    assert_eq!(m.dead_letter, 1);
    assert_eq!(m.spool_backlog, 0, "the spool is not stuck");
    let (_, _, f) = store.db().unwrap().counts().await.unwrap();
    assert_eq!(f, 2, "the other entries of the batch are stored");
    let dl = std::fs::read_to_string(settings.audit_spool_dir.join("dead-letter.jsonl")).unwrap();
    assert_eq!(dl.lines().count(), 1, "{dl}");
    assert!(dl.contains("c-2"), "{dl}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_record_goes_to_dead_letter_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    dead_letter_body(settings_in(dir.path(), None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VCF_TEST_POSTGRES_URL)"]
async fn refused_record_goes_to_dead_letter_postgres() {
    let url = required_postgres_db().await;
    let dir = tempfile::tempdir().unwrap();
    dead_letter_body(settings_in(dir.path(), Some(url))).await;
}

/// Spool replay speed (run with `--ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn spool_replay_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path(), None);
    // As for `audit_write_throughput`: CI runs it small, the BENCHMARKS.md figure is 20,000.
    let n: usize = std::env::var("VCF_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let data = seed::generate(n, 13, now(), 30).await.unwrap();
    let p = pseudonym::Pseudonymizer::new(None);
    let recs: Vec<SpoolRecord> = data
        .calls
        .into_iter()
        .map(|c| SpoolRecord::Call(StoredCall::from_record(c, &p)))
        .collect();
    {
        let mut spool = spool::Spool::open(&settings.audit_spool_dir).unwrap();
        for chunk in recs.chunks(64) {
            spool.append(&chunk.iter().collect::<Vec<_>>()).unwrap();
        }
    }
    let t0 = std::time::Instant::now();
    let store = AuditStore::open(&settings).await.unwrap();
    assert!(store.flush().await);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "spool replay: {n} calls in {secs:.2} s = {:.0} calls/s",
        n as f64 / secs
    );
    store.shutdown().await;
}
