//! The `herald` binary end to end: `serve` (plain and self-signed TLS),
//! `publish`, `subscribe`, and graceful exit on SIGTERM.

mod common;

use common::temp_dir;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

struct Serve {
    child: Child,
    addr: String,
    generated_key: Option<String>,
    banner: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of a child's stream, delivered through a channel so waits are bounded.
fn lines<R: std::io::Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the process printed a line in time")
}

fn serve(args: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(if args.contains(&"--listen") {
            &[][..]
        } else {
            &["--listen", "127.0.0.1:0"][..]
        })
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out: ChildStdout = child.stdout.take().unwrap();
    let rx = lines(out);
    let first = next_line(&rx);
    let addr = first
        .strip_prefix("Herald listening on ")
        .unwrap_or_else(|| panic!("unexpected banner {first:?}"))
        .to_string();
    let mut generated_key = None;
    let mut banner = Vec::new();
    // The banner's last line says it is ready.
    loop {
        let line = next_line(&rx);
        banner.push(line.clone());
        if let Some(k) = line.trim().strip_prefix("API key (generated): ") {
            generated_key = Some(k.to_string());
        }
        if line.starts_with("Ready") {
            break;
        }
    }
    Serve {
        child,
        addr,
        generated_key,
        banner,
    }
}

/// SIGTERM twice: the first starts the shutdown, the second skips its drain
/// period (when the two arrive together they count once, and the drain runs).
fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..2 {
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("herald serve did not exit after SIGTERM");
}

fn subscribe_then_publish(endpoint: &str, key: &str, extra: &[&str]) {
    let mut sub = Command::new(BIN)
        .args([
            "subscribe",
            "/default/*",
            "--count",
            "3",
            "--endpoint",
            endpoint,
            "--api-key",
            key,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines(sub.stderr.take().unwrap());
    let out = lines(sub.stdout.take().unwrap());
    assert_eq!(next_line(&err), "subscribed to /default/*");

    let publish = Command::new(BIN)
        .args([
            "publish",
            "default/room/1",
            r#"{"msg": "hi"}"#,
            "plain text",
            "12",
        ])
        .args(["--endpoint", endpoint, "--api-key", key])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        publish.status.success(),
        "{}",
        String::from_utf8_lossy(&publish.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&publish.stdout).unwrap();
    assert_eq!(result["successful"].as_array().unwrap().len(), 3);

    assert_eq!(next_line(&out), r#"{"msg":"hi"}"#);
    assert_eq!(next_line(&out), r#""plain text""#);
    assert_eq!(next_line(&out), "12");
    assert!(sub.wait().unwrap().success());
}

#[test]
fn serve_without_arguments_generates_a_key_and_serves_plain_http() {
    let mut s = serve(&[]);
    let key = s.generated_key.clone().expect("a generated key is printed");
    let console = format!("  console:   http://{}/console", s.addr);
    assert!(
        s.banner.contains(&console),
        "the development mode serves the console: {:?}",
        s.banner
    );
    assert!(key.starts_with("da2-") && key.len() == 30, "{key}");
    subscribe_then_publish(&format!("http://{}/event", s.addr), &key, &[]);

    // A wrong key is refused with a clear message and a failing exit code.
    let bad = Command::new(BIN)
        .args([
            "publish",
            "/default/a",
            "1",
            "--endpoint",
            &format!("http://{}", s.addr),
            "--api-key",
            "da2-wrong",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));

    assert!(sigterm(&mut s.child).success());
}

#[test]
fn self_signed_tls_mode() {
    let dir = temp_dir("tls");
    let mut s = serve(&[
        "--tls-self-signed",
        dir.to_str().unwrap(),
        "--api-key",
        "da2-clitls000000000000000000000",
    ]);
    assert!(s.generated_key.is_none());
    let cert = dir.join("cert.pem");
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let endpoint = format!("https://{}/event", s.addr);
    subscribe_then_publish(
        &endpoint,
        "da2-clitls000000000000000000000",
        &["--ca-cert", cert.to_str().unwrap()],
    );

    // Without trusting the certificate, the client refuses to talk.
    let untrusted = Command::new(BIN)
        .args([
            "publish",
            "/default/a",
            "1",
            "--endpoint",
            &endpoint,
            "--api-key",
            "da2-clitls000000000000000000000",
        ])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    assert!(String::from_utf8_lossy(&untrusted.stderr).contains("TLS"));
    assert!(sigterm(&mut s.child).success());

    // A restart reuses the certificate, so clients that trust it keep working.
    let mut again = serve(&[
        "--tls-self-signed",
        dir.to_str().unwrap(),
        "--api-key",
        "da2-clitls000000000000000000000",
    ]);
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), pem);
    assert!(sigterm(&mut again.child).success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let dir = temp_dir("cfg");
    let path = dir.join("herald.toml");
    std::fs::write(&path, "[[channel_namespaces]]\nname = \"bad_name\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("namespace name 'bad_name' is invalid"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `herald serve` on a free port with its logs (at the default level unless
/// the arguments say otherwise) written to `log_path`: the child, its address
/// and its banner.
fn serve_logging_to(args: &[&str], log_path: &std::path::Path) -> (Child, String, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("HERALD_LOG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log_path).unwrap())
        .spawn()
        .unwrap();
    let rx = lines(child.stdout.take().unwrap());
    let addr = next_line(&rx)
        .strip_prefix("Herald listening on ")
        .unwrap()
        .to_string();
    let mut banner = Vec::new();
    loop {
        let line = next_line(&rx);
        if line.starts_with("Ready") {
            break;
        }
        banner.push(line);
    }
    (child, addr, banner)
}

#[test]
fn logs_never_contain_secrets_and_carry_ids() {
    let dir = temp_dir("logs");
    let config = dir.join("herald.toml");
    // ALL: the most verbose AppSync log level.
    std::fs::write(
        &config,
        "[event_config]\nlog_config = { log_level = \"ALL\" }\n[[channel_namespaces]]\nname = \"default\"\n",
    )
    .unwrap();
    let good = "da2-logsecretgood000000000000";
    let bad = "da2-logsecretbad0000000000000";
    let log_path = dir.join("stderr.log");
    let (mut child, addr, banner) = serve_logging_to(
        &[
            "--log-format",
            "json",
            "--api-key",
            good,
            "--config",
            config.to_str().unwrap(),
        ],
        &log_path,
    );
    assert!(
        !banner.iter().any(|l| l.contains("console")),
        "a config file turns the console off by default: {banner:?}"
    );
    let endpoint = format!("http://{addr}/event");

    subscribe_then_publish(&endpoint, good, &[]);
    for key in [bad, good] {
        let _ = Command::new(BIN)
            .args([
                "publish",
                "/default/a",
                "1",
                "--endpoint",
                &endpoint,
                "--api-key",
                key,
            ])
            .output()
            .unwrap();
        let _ = Command::new(BIN)
            .args([
                "subscribe",
                "/nope/*",
                "--count",
                "1",
                "--endpoint",
                &endpoint,
                "--api-key",
                key,
            ])
            .output()
            .unwrap();
    }
    assert!(sigterm(&mut child).success());

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.lines().count() > 10, "ALL logs a lot: {logs}");
    for secret in [good, bad] {
        assert!(!logs.contains(secret), "a key leaked into the logs");
    }
    // The base64 `header-` subprotocol carrying the key must not leak either.
    assert!(
        !logs.contains("header-"),
        "an auth subprotocol leaked into the logs"
    );
    // Every line is JSON; connection lines carry the connection id, request lines the request id.
    let parsed: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        parsed.iter().any(|l| l["span"]["conn"].is_string()),
        "no connection id in logs"
    );
    assert!(
        parsed.iter().any(|l| l["span"]["req"].is_string()),
        "no request id in logs"
    );
    assert!(parsed
        .iter()
        .any(|l| l["fields"]["message"] == "authorization denied"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// At the default level, in text format into a file: no colour codes, and the
/// denial of an HTTP request carries the request id the client received.
#[test]
fn default_level_logs_carry_request_ids_and_no_colour_in_files() {
    let dir = temp_dir("textlogs");
    let log_path = dir.join("stderr.log");
    let (mut child, addr, _) =
        serve_logging_to(&["--api-key", "da2-goodkey000000000000000000"], &log_path);
    use std::io::{Read, Write};
    let body = r#"{"channel":"/default/a","events":["1"]}"#;
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        tcp,
        "POST /event HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-api-key: da2-wrongkey00000000000000000\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let request_id = response
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-requestid: "))
        .expect("a request id header")
        .trim()
        .to_string();
    assert!(sigterm(&mut child).success());
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !logs.contains('\x1b'),
        "colour codes in a log file: {logs:?}"
    );
    let denial = logs
        .lines()
        .find(|l| l.contains("authorization denied"))
        .unwrap_or_else(|| panic!("no denial logged: {logs}"));
    assert!(
        denial.contains(&format!("req={request_id}")),
        "the denial does not carry the request id {request_id}: {denial}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// On SIGTERM, `/ready` answers 503 `shutting_down` while the listener still
/// accepts and serves (the drain period), then the server exits by itself.
#[test]
fn sigterm_drains_with_ready_503_before_closing() {
    let dir = temp_dir("drain");
    let config = dir.join("herald.toml");
    std::fs::write(&config, "[server]\ndrain_ms = 5000\n").unwrap();
    let key = "da2-drainkey0000000000000000";
    let mut s = serve(&["--config", config.to_str().unwrap(), "--api-key", key]);
    let get = |path: &str| -> String {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(&s.addr).expect("the listener still accepts");
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        tcp.read_to_string(&mut r).unwrap();
        r
    };
    assert!(get("/ready").starts_with("HTTP/1.1 200"));
    let ok = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    // Bounded wait for the signal to be handled.
    let mut draining = String::new();
    for _ in 0..100 {
        draining = get("/ready");
        if draining.starts_with("HTTP/1.1 503") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(draining.starts_with("HTTP/1.1 503"), "{draining}");
    assert!(draining.contains("shutting_down"), "{draining}");
    // Still serving: a publish on a new connection works.
    let out = Command::new(BIN)
        .args(["publish", "/default/a", "1", "--api-key", key])
        .args(["--endpoint", &format!("http://{}/event", s.addr)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Then it exits on its own.
    let mut status = None;
    for _ in 0..300 {
        status = s.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(status.expect("exited after the drain").success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--listen` takes a host name; `herald publish` reads events from standard
/// input (`-`) and `--file`, one per line, in requests of at most five; and
/// `herald subscribe` on a terminal prints each event on a line of its own,
/// with no live counter mixed in.
#[test]
fn publish_from_stdin_and_file_and_subscribe_on_a_terminal() {
    let key = "da2-stdinkey0000000000000000";
    let s = serve(&["--listen", "localhost:0", "--api-key", key]);
    assert!(s.addr.starts_with("127.0.0.1:"), "{}", s.addr);
    let endpoint = format!("http://{}/event", s.addr);
    // `script` gives the subscriber a terminal for stdout and stderr.
    let command =
        format!("{BIN} subscribe /default/t --count 8 --endpoint {endpoint} --api-key {key}");
    let mut sub = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let out = lines(sub.stdout.take().unwrap());
    assert_eq!(
        next_line(&out).trim_end_matches('\r'),
        "subscribed to /default/t"
    );

    let dir = temp_dir("stdin");
    let file = dir.join("events.jsonl");
    std::fs::write(&file, "{\"f\":1}\n\nfrom the file\n").unwrap();
    let mut publish = Command::new(BIN)
        .args([
            "publish",
            "/default/t",
            "-",
            "--file",
            file.to_str().unwrap(),
        ])
        .args(["--endpoint", &endpoint, "--api-key", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = publish.stdin.take().unwrap();
        stdin
            .write_all(b"{\"s\":1}\n{\"s\":2}\n3\nplain\n{\"s\":5}\n{\"s\":6}\n")
            .unwrap();
    }
    let published = publish.wait_with_output().unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    // Eight events: one request of five, one of three.
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&published.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["successful"].as_array().unwrap().len(), 5);
    assert_eq!(results[1]["successful"].as_array().unwrap().len(), 3);

    let expected = [
        r#"{"s":1}"#,
        r#"{"s":2}"#,
        "3",
        r#""plain""#,
        r#"{"s":5}"#,
        r#"{"s":6}"#,
        r#"{"f":1}"#,
        r#""from the file""#,
    ];
    for want in expected {
        // The terminal may show a carriage return at the end of a line; any
        // other text on the line (a counter) fails.
        assert_eq!(next_line(&out).trim_end_matches('\r'), want);
    }
    assert!(sub.wait().unwrap().success());
    // Only the summary follows; never a live count.
    let rest: Vec<String> = out.iter().collect();
    assert!(
        !rest.iter().any(|l| l.contains("event(s) received")),
        "{rest:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_runs_against_a_server_and_counts_every_delivery() {
    let mut s = serve(&["--api-key", "da2-benchtest0000000000000000"]);
    let endpoint = format!("http://{}/event", s.addr);
    let run = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN)
            .arg("bench")
            .args(args)
            .args([
                "--endpoint",
                &endpoint,
                "--api-key",
                "da2-benchtest0000000000000000",
            ])
            .args(["--server-pid", &s.child.id().to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let r = run(&[
        "fanout",
        "--subscribers",
        "20",
        "--publishers",
        "1",
        "--batch",
        "3",
        "--duration",
        "1",
        "--rate",
        "300",
    ]);
    assert_eq!(r["scenario"], "fanout");
    let expected = r["expected_deliveries"].as_u64().unwrap();
    assert!(expected >= 20 * 3, "{r}");
    assert_eq!(r["received"].as_u64().unwrap(), expected, "{r}");
    assert_eq!(r["lost"], 0);
    assert!(r["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(r["server_cpu_seconds"].is_number());

    // Pipelined WebSocket publishers: every request answered, every event
    // delivered to each of a channel's subscribers, none twice. 20 requests/s
    // per connection stays under the server's default limit of 25.
    let r = run(&[
        "channels",
        "--channels",
        "4",
        "--per-channel",
        "3",
        "--publishers",
        "2",
        "--ws-publishers",
        "--window",
        "8",
        "--rate",
        "40",
        "--duration",
        "2",
    ]);
    assert_eq!(r["publish_via"], "websocket");
    assert_eq!(r["window"], 8);
    assert_eq!(r["publish_errors"], 0, "{r}");
    let published = r["published_events"].as_u64().unwrap();
    assert!(published >= 40, "{r}");
    assert_eq!(r["expected_deliveries"].as_u64().unwrap(), published * 3);
    assert_eq!(r["received"], r["expected_deliveries"], "{r}");

    let r = run(&[
        "connect",
        "--connections",
        "50",
        "--in-flight",
        "10",
        "--hold",
        "0",
    ]);
    assert_eq!(r["connections"], 50);
    assert_eq!(r["failed"], 0);

    // A non-loopback endpoint is refused unless asked for.
    let out = Command::new(BIN)
        .args([
            "bench",
            "http-publish",
            "--endpoint",
            "http://192.0.2.1:8080/event",
            "--api-key",
            "k",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not on loopback"));
    assert!(sigterm(&mut s.child).success());
}

/// A server that dies mid-run makes the run fail: publishers back off instead
/// of spinning, the failed publishes and cut-off subscribers are in the report,
/// and the exit code is non-zero.
#[test]
fn bench_fails_loudly_when_the_server_dies() {
    let key = "da2-benchdies0000000000000000";
    let mut s = serve(&["--api-key", key]);
    let endpoint = format!("http://{}/event", s.addr);
    let mut bench = Command::new(BIN)
        .args(["bench", "fanout", "--subscribers", "5", "--publishers", "1"])
        .args(["--rate", "200", "--duration", "6", "--endpoint", &endpoint])
        .args(["--api-key", key])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The live progress (written with \r, so read raw) shows publishes flowing.
    let mut stderr = bench.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut told = false;
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !told && String::from_utf8_lossy(&seen).contains(" published") {
                told = true;
                let _ = tx.send(None);
            }
        }
        let _ = tx.send(Some(String::from_utf8_lossy(&seen).into_owned()));
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), None);
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let out = bench.wait_with_output().unwrap();
    let stderr = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    assert!(!out.status.success(), "a failed run exited 0: {stderr}");
    assert!(stderr.contains("FAILED"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["ok"], false, "{r}");
    let errors = r["publish_errors"].as_u64().unwrap();
    assert!(errors > 0, "{r}");
    // Backoff: a few attempts a second against a dead server, not a hot loop.
    assert!(errors < 100, "publishers spun against a dead server: {r}");
    assert_eq!(r["failed_events"].as_u64().unwrap(), errors, "{r}");
    assert_eq!(r["subscribers_cut_off"], 5, "{r}");
}

#[test]
fn sighup_hot_reloads_handler_code_and_keeps_connections() {
    let dir = temp_dir("reload");
    let config = dir.join("herald.toml");
    let code = dir.join("handler.js");
    let write_code = |tag: &str| {
        std::fs::write(
            &code,
            format!("export function onPublish(ctx) {{ console.log('publishing', ctx.events.length, '{tag}'); return ctx.events.map((e) => ({{ id: e.id, payload: {{ v: '{tag}', n: e.payload }} }})) }}"),
        )
        .unwrap()
    };
    write_code("one");
    std::fs::write(
        &config,
        format!(
            "[[api_keys]]\nid = \"da2-reloadtest00000000000000000\"\n[[channel_namespaces]]\nname = \"default\"\ncode_handlers_file = {:?}\n",
            code.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("HERALD_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let addr = next_line(&out)
        .strip_prefix("Herald listening on ")
        .unwrap()
        .to_string();
    let endpoint = format!("http://{addr}/event");
    let key = "da2-reloadtest00000000000000000";

    // One subscriber stays connected through every reload.
    let mut sub = Command::new(BIN)
        .args([
            "subscribe",
            "/default/*",
            "--count",
            "3",
            "--endpoint",
            &endpoint,
            "--api-key",
            key,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sub_err = lines(sub.stderr.take().unwrap());
    let sub_out = lines(sub.stdout.take().unwrap());
    assert_eq!(next_line(&sub_err), "subscribed to /default/*");
    let publish = |n: u32| {
        let o = Command::new(BIN)
            .args([
                "publish",
                "/default/a",
                &n.to_string(),
                "--endpoint",
                &endpoint,
                "--api-key",
                key,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let wait_for_log = |needle: &str| loop {
        let line = next_line(&err);
        if line.contains(needle) {
            return line;
        }
    };
    let hup = |child: &Child| {
        assert!(Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };

    publish(1);
    assert_eq!(next_line(&sub_out), r#"{"v":"one","n":1}"#);

    // Broken code is refused; the previous code keeps running.
    std::fs::write(&code, "export function onPublish(ctx) { return ctx.events").unwrap();
    hup(&child);
    let refused = wait_for_log("reload refused for a namespace");
    assert!(refused.contains("SyntaxError"), "{refused}");
    wait_for_log("handler code reloaded");
    publish(2);
    assert_eq!(next_line(&sub_out), r#"{"v":"one","n":2}"#);

    // Good code is taken.
    write_code("two");
    hup(&child);
    wait_for_log("handler code reloaded");
    publish(3);
    assert_eq!(next_line(&sub_out), r#"{"v":"two","n":3}"#);
    // console.log lands in Herald's log, with the namespace.
    let logged = wait_for_log("handler: publishing 1 two");
    assert!(
        logged.contains("namespace") && logged.contains("default"),
        "{logged}"
    );
    assert!(
        sub.wait().unwrap().success(),
        "the subscriber was never disconnected"
    );
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `herald pattern test`: exit 0 and `match`, 1 and `no match`, 2 and the
/// reason for an invalid pattern or event; `@FILE` reads either from a file.
#[test]
fn pattern_test_answers_with_its_exit_code() {
    let run = |pattern: &str, event: &str| {
        let out = Command::new(BIN)
            .args(["pattern", "test", pattern, event])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let pattern = r#"{"source": ["aws.ec2"], "detail": {"state": [{"anything-but": "running"}]}}"#;
    let (code, out, _) = run(
        pattern,
        r#"{"source": "aws.ec2", "detail": {"state": "stopped"}}"#,
    );
    assert_eq!((code, out.as_str()), (0, "match"));
    let (code, out, _) = run(
        pattern,
        r#"{"source": "aws.ec2", "detail": {"state": "running"}}"#,
    );
    assert_eq!((code, out.as_str()), (1, "no match"));
    let (code, out, err) = run(r#"{"source": "aws.ec2"}"#, "{}");
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains("Event pattern is not valid") && err.contains("source"),
        "{err}"
    );
    let (code, _, err) = run(pattern, "{not json");
    assert_eq!(code, 2);
    assert!(err.contains("event is not valid JSON"), "{err}");
    let dir = temp_dir("pattern");
    std::fs::write(dir.join("p.json"), pattern).unwrap();
    std::fs::write(
        dir.join("e.json"),
        r#"{"source": ["x", "aws.ec2"], "detail": {"state": "x"}}"#,
    )
    .unwrap();
    let (code, out, _) = run(
        &format!("@{}", dir.join("p.json").display()),
        &format!("@{}", dir.join("e.json").display()),
    );
    assert_eq!((code, out.as_str()), (0, "match"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A SIGTERM sent the moment the banner says "Ready" gets the graceful
/// shutdown (exit 0): the signals are listened for before the banner, never
/// left to their default action (which kills the process).
#[test]
fn sigterm_right_after_ready_shuts_down_gracefully() {
    for _ in 0..10 {
        let mut s = serve(&["--api-key", "da2-readyterm00000000000000000"]);
        assert!(sigterm(&mut s.child).success());
    }
}
