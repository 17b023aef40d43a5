//! The real `vcf-cds serve` binary as a child process (for what only a process shows: log
//! lines, signals, exit codes, several replicas). JSON logs on stderr are collected line by
//! line; the port is read from the "vcf-cds listening" line.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment of a server whose audit store (SQLite) and spool live in `dir`.
pub fn audit_env(dir: &std::path::Path) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "VCF_CDS_AUDIT_DB".to_string(),
            dir.join("audit.sqlite").display().to_string(),
        ),
        (
            "VCF_CDS_AUDIT_SPOOL_DIR".to_string(),
            dir.join("spool").display().to_string(),
        ),
    ])
}

pub struct ServerProcess {
    pub child: Child,
    pub address: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `vcf-cds serve` on 127.0.0.1:0 with exactly `env` (plus JSON logs at info).
    pub fn start(env: &BTreeMap<String, String>) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcf-cds"));
        cmd.arg("serve")
            .env_clear()
            .env("VCF_CDS_LISTEN", "127.0.0.1:0")
            .env("VCF_CDS_LOG_FORMAT", "json")
            .env("VCF_CDS_LOG_LEVEL", "info")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vcf-cds serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = ServerProcess {
            child,
            address: String::new(),
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = server
                .logs()
                .iter()
                .find(|l| {
                    l["fields"]["message"] == "vcf-cds listening"
                        || l["message"] == "vcf-cds listening"
                })
                .and_then(|l| {
                    l["address"]
                        .as_str()
                        .or(l["fields"]["address"].as_str())
                        .map(str::to_owned)
                })
            {
                server.address = format!("http://{addr}");
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "vcf-cds serve exited with {status}: {:?}",
                    server.raw_lines()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {:?}",
                server.raw_lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn raw_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every JSON log line so far.
    pub fn logs(&self) -> Vec<Value> {
        self.raw_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. "TERM") with the shell's `kill` builtin (no procps needed).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {signal} {}", self.pid()))
            .status()
            .expect("sh -c kill")
            .success();
        assert!(ok, "kill -{signal} {}", self.pid());
    }

    /// Waits for the process to exit (at most `limit`), returning its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "server did not exit within {limit:?}: {:?}",
                    self.raw_lines()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
