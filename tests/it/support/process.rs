//! Child processes of the tests: killed on drop, started until they print
//! the address they listen on, and waited for over HTTP.

use std::io::BufRead;
use std::process::{Command, Stdio};

/// A child process killed on drop (so a failed test leaves nothing running).
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a command that prints "… listening on http://ADDR…" and returns the
/// child with that address (ports are chosen by the OS: no race with other tests).
pub fn spawn_listening(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("the process printed its address").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split(|c: char| c == '/' || c.is_whitespace()).next().unwrap().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Child(child), addr)
}

/// Waits (up to 10 s) until `url` answers at all.
pub async fn wait_http(url: &str) {
    let c = reqwest::Client::new();
    for _ in 0..200 {
        if c.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}
