//! The `esm` scenario: an event source mapping's cost next to the broker's
//! own, on the same machine and the same records.
//!
//! 1. **Broker alone**: a backlog of N records is consumed the cheapest way a
//!    program can (Redis `XREADGROUP` + `XACK` per 100; JetStream pull
//!    `fetch` of 100, each acknowledged): records/s.
//! 2. **By hand**: the same backlog consumed by a purpose-written loop that
//!    hands each batch to the same function as the same event (Lambda's
//!    shape, the fields the mapping sends), then acknowledges it.
//! 3. **Herald, backlog**: a mapping (batch 100, a trivial JavaScript
//!    function run in-process) drains a fresh backlog of N records: records/s
//!    end to end (poll, filter, batch, invoke, acknowledge).
//! 4. **Herald, live**: records appended at `--rate` per second for
//!    `--duration` seconds while the mapping runs: p50/p99 from the broker's
//!    append time to the invoke (millisecond timestamps: Redis ids, JetStream
//!    publish times).
//! 5. **CPU at that rate**: this process's CPU time (`/proc/self/stat`) over
//!    a live run of each consumer (broker alone, by hand with the function,
//!    Herald), less what appending alone costs, per 1,000 records.
//!
//! The ratios of (3) to (2), throughput, and of Herald's CPU to the by-hand
//! loop's at the fixed rate, are Herald's overhead over the cheapest
//! program doing the same job.

use crate::esm::source::Record;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FUNCTION: &str = "export const handler = async (event) => ({ n: event.Records.length });";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &crate::new_uuid().simple().to_string()[..8])
}

/// One broker under test (clones share the connection).
#[derive(Clone)]
enum Broker {
    Redis {
        conn: redis::aio::MultiplexedConnection,
        url: String,
    },
    JetStream {
        js: async_nats::jetstream::Context,
        url: String,
    },
}

impl Broker {
    async fn connect(source: &str, url: Option<String>) -> Result<Broker, String> {
        match source {
            "redis" => {
                let url = url.unwrap_or_else(|| "redis://127.0.0.1:6379".into());
                // Blocking reads wait up to a second: more than the
                // default response timeout.
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(Duration::from_secs(30)));
                let conn = redis::Client::open(url.as_str())
                    .map_err(|e| e.to_string())?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| format!("Redis {url}: {e}"))?;
                Ok(Broker::Redis { conn, url })
            }
            "jetstream" => {
                let url = url.unwrap_or_else(|| "nats://127.0.0.1:4222".into());
                let client = async_nats::connect(url.as_str())
                    .await
                    .map_err(|e| format!("NATS {url}: {e}"))?;
                Ok(Broker::JetStream {
                    js: async_nats::jetstream::new(client),
                    url,
                })
            }
            other => Err(format!("--source {other}: redis or jetstream")),
        }
    }

    fn service(&self) -> &'static str {
        match self {
            Broker::Redis { .. } => "redis",
            Broker::JetStream { .. } => "nats",
        }
    }

    /// The `--source` name.
    fn service_name(&self) -> &'static str {
        match self {
            Broker::Redis { .. } => "redis",
            Broker::JetStream { .. } => "jetstream",
        }
    }

    fn url(&self) -> &str {
        match self {
            Broker::Redis { url, .. } | Broker::JetStream { url, .. } => url,
        }
    }

    /// A new, empty stream.
    async fn create(&mut self, name: &str) -> Result<(), String> {
        match self {
            Broker::Redis { .. } => Ok(()),
            Broker::JetStream { js, .. } => js
                .create_stream(async_nats::jetstream::stream::Config {
                    name: name.to_string(),
                    subjects: vec![format!("{name}.>")],
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    async fn remove(&mut self, name: &str) {
        match self {
            Broker::Redis { conn, .. } => {
                let _: Result<(), _> = redis::cmd("DEL").arg(name).query_async(conn).await;
            }
            Broker::JetStream { js, .. } => {
                let _ = js.delete_stream(name).await;
            }
        }
    }

    /// Append `n` records of about `payload` bytes, pipelined.
    async fn produce(&mut self, name: &str, n: usize, payload: usize) -> Result<(), String> {
        let body =
            json!({"kind": "order", "pad": "x".repeat(payload.saturating_sub(30))}).to_string();
        match self {
            Broker::Redis { conn, .. } => {
                for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                    let mut pipe = redis::pipe();
                    for _ in chunk {
                        pipe.cmd("XADD")
                            .arg(name)
                            .arg("*")
                            .arg("data")
                            .arg(&body)
                            .ignore();
                    }
                    let _: () = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
                }
            }
            Broker::JetStream { js, .. } => {
                for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                    let mut acks = Vec::with_capacity(chunk.len());
                    for _ in chunk {
                        acks.push(
                            js.publish(format!("{name}.x"), body.clone().into())
                                .await
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    for a in acks {
                        a.await.map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Consume `n` records the broker's own cheapest way; seconds taken.
    /// With `function`, each batch is also handed to it as the same event
    /// the mapping sends (Lambda's shape, the same fields), built by hand
    /// with `json!`: what a purpose-written consumer calling the function
    /// costs. `live`: records are still being appended, so an empty read
    /// waits for more instead of ending.
    async fn consume(
        &mut self,
        name: &str,
        n: usize,
        function: Option<&crate::functions::Functions>,
        live: bool,
    ) -> Result<f64, String> {
        let group = if function.is_some() { "basefn" } else { "base" };
        let deadline = Instant::now() + Duration::from_secs(120);
        let call = |records: Vec<Value>| async move {
            if let Some(f) = function {
                let event = serde_json::to_vec(&json!({ "Records": records })).expect("JSON");
                let r = f
                    .invoke_built("bench", bytes::Bytes::from(event))
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                if r.function_error {
                    return Err("the function failed".to_string());
                }
            }
            Ok::<(), String>(())
        };
        let started = Instant::now();
        let mut done = 0;
        match self {
            Broker::Redis { conn, .. } => {
                let _: Result<redis::Value, _> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(name)
                    .arg(group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(conn)
                    .await;
                while done < n {
                    let mut read = redis::cmd("XREADGROUP");
                    read.arg("GROUP").arg(group).arg("c").arg("COUNT").arg(100);
                    if live {
                        read.arg("BLOCK").arg(1000);
                    }
                    let reply: redis::Value = read
                        .arg("STREAMS")
                        .arg(name)
                        .arg(">")
                        .query_async(conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    let (ids, records) = entries(name, &reply, function.is_some());
                    if ids.is_empty() {
                        if live && Instant::now() < deadline {
                            continue;
                        }
                        break;
                    }
                    call(records).await?;
                    let _: redis::Value = redis::cmd("XACK")
                        .arg(name)
                        .arg(group)
                        .arg(&ids)
                        .query_async(conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    done += ids.len();
                }
            }
            Broker::JetStream { js, .. } => {
                use async_nats::jetstream::consumer::{pull, AckPolicy};
                let stream = js.get_stream(name).await.map_err(|e| e.to_string())?;
                let consumer = stream
                    .create_consumer(pull::Config {
                        durable_name: Some(group.into()),
                        ack_policy: AckPolicy::Explicit,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                while done < n {
                    let mut batch = consumer
                        .fetch()
                        .max_messages(100)
                        .expires(Duration::from_secs(1))
                        .messages()
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut got = Vec::new();
                    while let Some(m) = batch.next().await {
                        got.push(m.map_err(|e| e.to_string())?);
                    }
                    if got.is_empty() {
                        if live && Instant::now() < deadline {
                            continue;
                        }
                        break;
                    }
                    if function.is_some() {
                        let records = got.iter().map(|m| message(name, m)).collect();
                        call(records).await?;
                    }
                    for m in &got {
                        m.ack().await.map_err(|e| e.to_string())?;
                    }
                    let got = got.len();
                    done += got;
                }
            }
        }
        if done < n {
            return Err(format!("the broker gave {done} of {n} records"));
        }
        Ok(started.elapsed().as_secs_f64())
    }
}

/// Entry ids, and (when asked) each entry as the mapping's record.
fn entries(stream: &str, reply: &redis::Value, records: bool) -> (Vec<String>, Vec<Value>) {
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for (id, fields) in crate::esm::sources::redis_streams::read_reply(reply) {
        if records {
            let ms: u64 = id
                .split('-')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            let fields: serde_json::Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            out.push(json!({
                "eventSource": "herald:redis",
                "eventSourceARN": format!("arn:aws:redis:us-east-1:000000000000:stream/{stream}"),
                "awsRegion": "us-east-1",
                "eventID": format!("{stream}:{id}"),
                "eventName": "redis:stream:entry",
                "redis": {"stream": stream, "id": id, "approximateArrivalTimestamp": ms as f64 / 1000.0, "fields": fields},
            }));
        }
        ids.push(id);
    }
    (ids, out)
}

/// A JetStream message as the mapping's record.
fn message(stream: &str, m: &async_nats::jetstream::Message) -> Value {
    use base64::Engine as _;
    let (seq, ms, delivered) = m
        .info()
        .map(|i| {
            let ms = (i.published.unix_timestamp_nanos() / 1_000_000) as u64;
            (i.stream_sequence, ms, i.delivered)
        })
        .unwrap_or_default();
    json!({
        "eventSource": "herald:nats",
        "eventSourceARN": format!("arn:aws:nats:us-east-1:000000000000:stream/{stream}"),
        "awsRegion": "us-east-1",
        "eventID": format!("{stream}:{seq}"),
        "eventName": "nats:jetstream:message",
        "jetstream": {
            "stream": stream,
            "subject": m.message.subject.as_str(),
            "sequenceNumber": seq.to_string(),
            "approximateArrivalTimestamp": ms as f64 / 1000.0,
            "deliveryCount": delivered,
            "headers": {},
            "data": base64::engine::general_purpose::STANDARD.encode(&m.message.payload),
        },
    })
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`
/// (Linux; clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Append `per_tick` records every 10 ms for `ticks` ticks; how many.
async fn produce_at(
    broker: &mut Broker,
    name: &str,
    per_tick: usize,
    ticks: usize,
    payload: usize,
) -> Result<usize, String> {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..ticks {
        tick.tick().await;
        broker.produce(name, per_tick, payload).await?;
    }
    Ok(per_tick * ticks)
}

/// CPU seconds the process spends while records are appended at a fixed
/// rate and (when `function` is `Some`, or `consume`) consumed by hand
/// meanwhile.
async fn live_cpu(
    broker: &Broker,
    per_tick: usize,
    ticks: usize,
    payload: usize,
    consume: bool,
    function: Option<&crate::functions::Functions>,
) -> Result<f64, String> {
    let name = unique("HERALDBENCHLIVE");
    // The consumer's own connection: a blocked Redis read holds its
    // connection's later commands back.
    let mut producer = broker.clone();
    let mut consumer = Broker::connect(broker.service_name(), Some(broker.url().into())).await?;
    producer.create(&name).await?;
    let n = per_tick * ticks;
    let before = cpu_secs();
    let (made, took) = tokio::join!(
        produce_at(&mut producer, &name, per_tick, ticks, payload),
        async {
            if consume {
                consumer.consume(&name, n, function, true).await.map(|_| ())
            } else {
                Ok(())
            }
        }
    );
    let cpu = cpu_secs() - before;
    producer.remove(&name).await;
    made?;
    took?;
    Ok(cpu)
}

/// What the observer saw.
#[derive(Default)]
struct Seen {
    records: usize,
    latency_ms: Option<Histogram<u64>>,
}

pub async fn esm_scenario(
    source: String,
    url: Option<String>,
    records: usize,
    batch: u64,
    payload: usize,
    rate: u64,
    duration: Duration,
) -> Result<Value, String> {
    let mut broker = Broker::connect(&source, url).await?;
    // 1. The broker alone.
    let base = unique("HERALDBENCHBASE");
    broker.create(&base).await?;
    broker.produce(&base, records, payload).await?;
    let broker_secs = broker.consume(&base, records, None, false).await?;

    // 2 and 3: a server with the function, the mapping applied here.
    let config_text = format!(
        "[[functions]]\nname = \"bench\"\ncode = '''{FUNCTION}'''\n[[event_sources]]\narn = \"arn:aws:{svc}:us-east-1:000000000000:stream/*\"\nurl = \"{url}\"\n[server]\nmetrics = true\n",
        svc = broker.service(),
        url = broker.url(),
    );
    let server = super::in_process(&config_text).await?;
    // 1b. The broker and the function, by hand (same backlog, another group).
    let functions = &server.api().functions;
    let with_function = broker.consume(&base, records, Some(functions), false).await;
    broker.remove(&base).await;
    let with_function_secs = with_function?;
    // CPU at a fixed rate: appending alone, then consuming by hand without
    // and with the function (Herald's own follows below).
    let per_tick = (rate / 100).max(1) as usize;
    let ticks = (duration.as_secs_f64() * 100.0) as usize;
    let live_n = (per_tick * ticks) as f64;
    let produce_cpu = live_cpu(&broker, per_tick, ticks, payload, false, None).await?;
    let broker_cpu = live_cpu(&broker, per_tick, ticks, payload, true, None).await?;
    let by_hand_cpu = live_cpu(&broker, per_tick, ticks, payload, true, Some(functions)).await?;
    let mappings = server.mappings();
    let running = server.spawn();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let notify = Arc::new(tokio::sync::Notify::new());
    {
        let (seen, notify) = (seen.clone(), notify.clone());
        mappings.observe(Arc::new(move |batch: &[Record]| {
            let now = now_ms();
            let mut s = seen.lock().unwrap();
            s.records += batch.len();
            if let Some(h) = s.latency_ms.as_mut() {
                for r in batch {
                    let _ = h.record(now.saturating_sub(r.arrived_ms));
                }
            }
            notify.notify_one();
        }));
    }
    let stream = unique("HERALDBENCH");
    broker.create(&stream).await?;
    broker.produce(&stream, records, payload).await?;
    let spec_json = json!({
        "EventSourceArn": format!("arn:aws:{}:us-east-1:000000000000:stream/{stream}", broker.service()),
        "FunctionName": "bench",
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": batch,
    });
    let spec = crate::esm::spec::MappingSpec::from_request(
        spec_json.as_object().expect("an object"),
        None,
        crate::new_uuid().to_string(),
    )?;
    let uuid = spec.uuid.clone();
    let started = Instant::now();
    mappings.apply(spec);
    let wait_for = |target: usize| {
        let (seen, notify) = (seen.clone(), notify.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if seen.lock().unwrap().records >= target {
                    return Ok(());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "the mapping invoked {} of {target} records in 120 s",
                        seen.lock().unwrap().records
                    ));
                }
                let _ = tokio::time::timeout(left, notify.notified()).await;
            }
        }
    };
    wait_for(records).await?;
    let herald_secs = started.elapsed().as_secs_f64();

    // 3. Live records at a fixed rate.
    seen.lock().unwrap().latency_ms = Some(Histogram::new(3).expect("a histogram"));
    let before = seen.lock().unwrap().records;
    let cpu_before = cpu_secs();
    produce_at(&mut broker, &stream, per_tick, ticks, payload).await?;
    wait_for(before + per_tick * ticks).await?;
    let herald_cpu = cpu_secs() - cpu_before;
    let h = seen.lock().unwrap().latency_ms.take().expect("set above");
    mappings.remove(&uuid);
    running.shutdown().await;
    broker.remove(&stream).await;
    let broker_rate = records as f64 / broker_secs;
    let herald_rate = records as f64 / herald_secs;
    let by_hand_rate = records as f64 / with_function_secs;
    // Consuming's CPU (what appending alone cost taken off), per 1,000
    // records.
    let per_1000 = |cpu: f64| ((cpu - produce_cpu).max(0.0) * 1e9 / live_n).round() / 1000.0;
    let (broker_ms, by_hand_ms, herald_ms) = (
        per_1000(broker_cpu),
        per_1000(by_hand_cpu),
        per_1000(herald_cpu),
    );
    Ok(json!({
        "scenario": "esm",
        "source": source,
        "records": records,
        "batch": batch,
        "payload_bytes": payload,
        "broker_consume_per_sec": broker_rate.round(),
        "herald_end_to_end_per_sec": herald_rate.round(),
        "herald_over_broker_cost": format!("{:.2}", broker_rate / herald_rate),
        "broker_and_function_by_hand_per_sec": by_hand_rate.round(),
        "herald_over_by_hand_cost": format!("{:.2}", by_hand_rate / herald_rate),
        "live_rate_per_sec": per_tick as u64 * 100,
        "live_consume_cpu_ms_per_1000_broker": broker_ms,
        "live_consume_cpu_ms_per_1000_by_hand": by_hand_ms,
        "live_consume_cpu_ms_per_1000_herald": herald_ms,
        "live_herald_over_by_hand_cpu": format!("{:.2}", herald_ms / by_hand_ms.max(0.001)),
        "live_records": h.len(),
        "append_to_invoke_p50_ms": h.value_at_quantile(0.5),
        "append_to_invoke_p99_ms": h.value_at_quantile(0.99),
        "append_to_invoke_max_ms": h.max(),
    }))
}
