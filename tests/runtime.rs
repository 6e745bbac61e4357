//! The entity runtime, exercised with a small counter entity whose
//! "storage" is a shared map: activation once under concurrency,
//! passivation and a message racing it, supervision after a panic, bounded
//! ingress and call timeouts, memory following the working set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora::actors::runtime::{Entity, EntityError, EntityRef, Region, RegionSettings};
use dashmap::DashMap;
use ractor::RpcReplyPort;

mod common;
use common::eventually;

/// A counter persisted in `stored` before every reply.
#[derive(Default)]
struct Counter {
    stored: DashMap<String, i64>,
    activations: DashMap<String, usize>,
    total_activations: AtomicUsize,
}

enum CounterMsg {
    Add(i64, RpcReplyPort<i64>),
    Get(RpcReplyPort<i64>),
    Sleep(Duration, RpcReplyPort<()>),
    Panic(RpcReplyPort<()>),
}

struct CounterState {
    id: String,
    value: i64,
}

/// The entity kind: a handle on the shared counter storage. `REVIVE` turns
/// on re-activation by the runtime after a failure.
#[derive(Clone)]
struct Counters<const REVIVE: bool = false>(Arc<Counter>);

impl<const REVIVE: bool> std::ops::Deref for Counters<REVIVE> {
    type Target = Counter;

    fn deref(&self) -> &Counter {
        &self.0
    }
}

impl<const REVIVE: bool> Entity for Counters<REVIVE> {
    const KIND: &'static str = "test-counter";
    const REVIVE_AFTER_FAILURE: bool = REVIVE;
    type Msg = CounterMsg;
    type State = CounterState;

    async fn activate(&self, id: &str, _: &EntityRef<Self>) -> Result<CounterState, EntityError> {
        *self.activations.entry(id.to_owned()).or_insert(0) += 1;
        self.total_activations.fetch_add(1, Ordering::Relaxed);
        let value = self.stored.get(id).map_or(0, |v| *v);
        Ok(CounterState {
            id: id.to_owned(),
            value,
        })
    }

    async fn handle(
        &self,
        message: CounterMsg,
        state: &mut CounterState,
        _: &EntityRef<Self>,
    ) -> Result<(), EntityError> {
        match message {
            CounterMsg::Add(n, reply) => {
                state.value += n;
                self.stored.insert(state.id.clone(), state.value);
                let _ = reply.send(state.value);
            }
            CounterMsg::Get(reply) => {
                let _ = reply.send(state.value);
            }
            CounterMsg::Sleep(duration, reply) => {
                tokio::time::sleep(duration).await;
                let _ = reply.send(());
            }
            CounterMsg::Panic(_reply) => panic!("test entity asked to panic"),
        }
        Ok(())
    }
}

async fn region(idle: Duration) -> (Region<Counters>, Arc<Counter>) {
    region_with(RegionSettings {
        idle,
        ..Default::default()
    })
    .await
}

async fn region_with(settings: RegionSettings) -> (Region<Counters>, Arc<Counter>) {
    let counter = Arc::new(Counter::default());
    (
        Region::start(Counters(counter.clone()), settings)
            .await
            .unwrap(),
        counter,
    )
}

async fn add(region: &Region<Counters>, id: &str, n: i64) -> Result<i64, EntityError> {
    region.call(id, |reply| CounterMsg::Add(n, reply)).await
}

async fn get(region: &Region<Counters>, id: &str) -> i64 {
    region.call(id, CounterMsg::Get).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_messages_activate_one_actor() {
    let (region, counter) = region(Duration::from_secs(60)).await;
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let region = region.clone();
            tokio::spawn(async move { add(&region, "c1", 1).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(get(&region, "c1").await, 200);
    assert_eq!(*counter.activations.get("c1").unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_entity_passivates_and_returns_with_its_state() {
    let (region, counter) = region(Duration::from_millis(50)).await;
    add(&region, "c1", 5).await.unwrap();
    assert_eq!(region.live(), 1);
    eventually("passivation", || async { region.live() == 0 }).await;
    assert_eq!(
        get(&region, "c1").await,
        5,
        "state reloaded on re-activation"
    );
    assert_eq!(*counter.activations.get("c1").unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_racing_passivation_are_never_lost() {
    // Idle time of one millisecond: the actor tries to passivate between
    // almost every pair of messages.
    let (region, counter) = region(Duration::from_millis(1)).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let region = region.clone();
            tokio::spawn(async move {
                for i in 0..300u64 {
                    add(&region, "hot", 1).await.unwrap();
                    if (i + w) % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(
        get(&region, "hot").await,
        1_200,
        "every acknowledged add is kept"
    );
    assert!(
        *counter.activations.get("hot").unwrap() > 1,
        "passivation did race the writers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_entity_fails_its_caller_and_comes_back_from_storage() {
    let (region, counter) = region(Duration::from_secs(60)).await;
    add(&region, "c1", 3).await.unwrap();
    add(&region, "other", 7).await.unwrap();
    let failed = region.call("c1", CounterMsg::Panic).await;
    assert!(
        matches!(failed, Err(EntityError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(
        get(&region, "c1").await,
        3,
        "re-activated with the persisted state"
    );
    assert_eq!(*counter.activations.get("c1").unwrap(), 2);
    assert_eq!(
        get(&region, "other").await,
        7,
        "the supervisor and the other entities live on"
    );
    assert_eq!(*counter.activations.get("other").unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_entity_times_out_and_a_full_region_is_overloaded() {
    let settings = RegionSettings {
        call_timeout: Duration::from_millis(100),
        max_in_flight: 1,
        ..Default::default()
    };
    let (region, _) = region_with(settings).await;
    let slow = {
        let region = region.clone();
        tokio::spawn(async move {
            region
                .call("c1", |reply| {
                    CounterMsg::Sleep(Duration::from_millis(500), reply)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let refused = add(&region, "c2", 1).await;
    assert!(
        matches!(refused, Err(EntityError::Overloaded)),
        "{refused:?}"
    );
    assert!(matches!(slow.await.unwrap(), Err(EntityError::Timeout)));
    // The caller gave up, but the actor is still busy with its message: the
    // capacity stays taken until the actor is done, so callers timing out
    // cannot pile work into a stalled actor.
    assert!(matches!(
        add(&region, "c2", 1).await,
        Err(EntityError::Overloaded)
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        match add(&region, "c2", 1).await {
            Ok(value) => break value,
            Err(EntityError::Overloaded) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_eq!(value, 1, "capacity is back once the actor handled it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_follows_the_working_set() {
    let (region, counter) = region(Duration::from_millis(300)).await;
    let ids: Vec<String> = (0..100_000).map(|i| format!("sku-{i}")).collect();
    for chunk in ids.chunks(1_000) {
        let calls: Vec<_> = chunk
            .iter()
            .map(|id| {
                let (region, id) = (region.clone(), id.clone());
                tokio::spawn(async move { get(&region, &id).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
    }
    assert_eq!(counter.total_activations.load(Ordering::Relaxed), 100_000);
    eventually("all 100,000 idle entities passivated", || async {
        region.live() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_that_asks_for_it_is_revived_after_a_failure_without_a_message() {
    let counter = Arc::new(Counter::default());
    let region: Region<Counters<true>> =
        Region::start(Counters(counter.clone()), RegionSettings::default())
            .await
            .unwrap();
    region
        .call("timer", |reply| CounterMsg::Add(1, reply))
        .await
        .unwrap();
    let failed = region.call("timer", CounterMsg::Panic).await;
    assert!(matches!(failed, Err(EntityError::Unavailable(_))));
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter.activations.get("timer").map_or(0, |n| *n) < 2 {
        assert!(Instant::now() < deadline, "never revived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        region.live(),
        1,
        "alive again, with nobody having sent it anything"
    );
}
