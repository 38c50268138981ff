//! A running `trellis run --listen 127.0.0.1:0 -o json`, for the webhook
//! tests and the latency benchmark: its passes as they are reported, and
//! deliveries to its receiver.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Long enough for a pass that was asked for to have happened.
pub const SETTLE: Duration = Duration::from_secs(20);

/// The process, stopped (by its PID) when dropped.
pub struct Running {
    child: Child,
    address: String,
    passes: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Running {
    /// Runs `trellis ARGS --listen 127.0.0.1:0 -o json`, `command` having
    /// the binary, its folder and its environment.
    pub fn start(mut command: Command, args: &[&str]) -> Running {
        command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "-o", "json"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let passes = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stdout.take().unwrap());
        let seen = passes.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        let mut errors = BufReader::new(child.stderr.take().unwrap());
        let address = loop {
            let mut line = String::new();
            let read = errors.read_line(&mut line).unwrap();
            assert!(read > 0, "trellis run ended before it listened");
            match line.trim().strip_prefix("receiving webhooks on ") {
                Some(address) => break address.to_owned(),
                None => eprint!("trellis run: {line}"),
            }
        };
        std::thread::spawn(move || {
            for line in errors.lines().map_while(Result::ok) {
                eprintln!("trellis run: {line}");
            }
        });
        Running {
            child,
            address,
            passes,
        }
    }

    pub fn passes(&self) -> Vec<serde_json::Value> {
        self.passes.lock().unwrap().clone()
    }

    /// Waits until `count` passes were reported; panics after `SETTLE`.
    pub fn wait_for(&self, count: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let passes = self.passes();
            if passes.len() >= count {
                return passes;
            }
            assert!(
                start.elapsed() < SETTLE,
                "expected {count} pass(es), saw {}: {passes:#?}",
                passes.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Passes reported since `before`, after the receiver and the loop
    /// had time to act on anything they were sent.
    pub fn quiet_after(&self, before: usize) -> Vec<serde_json::Value> {
        std::thread::sleep(Duration::from_millis(1500));
        self.passes()[before..].to_vec()
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        post(&format!("{}{path}", self.address), headers, body).send()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.1 POST over a socket: the tests need no client crate.
pub struct Post {
    address: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Post {
    let rest = url.strip_prefix("http://").unwrap();
    let (address, path) = rest.split_at(rest.find('/').unwrap());
    Post {
        address: address.to_owned(),
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.to_owned(),
    }
}

impl Post {
    pub fn send(&mut self) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.path,
            self.address,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(self.body.as_bytes());
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("an HTTP answer: {answer}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

/// Jira's signature of `body` with `secret` (`X-Hub-Signature`).
pub fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A Jira delivery naming issue `key`.
pub fn jira_event(event: &str, key: &str) -> String {
    format!(
        r#"{{"timestamp":1765100000000,"webhookEvent":"{event}","issue":{{"id":"10100","key":"{key}","fields":{{"summary":"ignored: the pass reads the tracker"}}}}}}"#
    )
}
