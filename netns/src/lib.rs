//! Network namespaces for the Rust integration tests of `bpc-agent`,
//! `bpc-receiver` and `bpc-sim` (a dev-dependency only; `scripts/netns-pod.sh` is the shell
//! counterpart for the end-to-end scripts).
//!
//! A "pod" is a network namespace, exactly what a sidecar sees in a real
//! pod. Every namespace and process is owned by a guard that removes it on
//! drop, so a failing (panicking) test leaves nothing behind. Names carry a
//! role, a per-test tag and the test process id, so tests run in parallel
//! and side by side with other checkouts; addresses are in 198.18.0.0/15
//! (RFC 2544 benchmarking space) or loopback, and exist only inside the
//! namespaces. Everything needs root (`ip netns`, `setns`).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs a command and panics with its stderr if it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Reads a file, empty if missing (a process that has not written yet).
pub fn read_to_string(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        // A half-written file reads as what is there; callers poll.
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Polls `done` every 20 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `get` every 20 ms until `done` holds of it or `timeout` passes, and
/// returns the last value either way: the caller's assertions then say what
/// was there instead.
pub fn poll<T>(timeout: Duration, mut get: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = get();
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace deleted on drop (its veth ends go with it).
pub struct Netns {
    /// The namespace name.
    pub name: String,
}

impl Netns {
    /// Creates `bpc-<role>-<tag><pid>` with loopback up, replacing one a
    /// killed run of the same process id left behind.
    pub fn new(role: &str, tag: &str) -> Netns {
        let name = format!("bpc-{role}-{tag}{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace, panicking on failure.
    pub fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full);
    }

    /// A command to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Moves the calling thread into this namespace (for sockets opened by the test itself).
    pub fn enter(&self) {
        enter(&self.name);
    }

    /// Runs `f` on a new thread inside this namespace: sockets it opens
    /// stay in the namespace, the test's own thread stays outside.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name);
            f()
        })
    }

    /// The MAC address of `iface` in this namespace.
    pub fn mac(&self, iface: &str) -> [u8; 6] {
        let out = self.command("cat").arg(format!("/sys/class/net/{iface}/address")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut mac = [0u8; 6];
        for (b, part) in mac.iter_mut().zip(text.trim().split(':')) {
            *b = u8::from_str_radix(part, 16).unwrap();
        }
        mac
    }

    /// HTTP GET on 127.0.0.1:`port` in this namespace: (status code, body).
    pub fn http_get(&self, port: u16, path: &str) -> (u16, String) {
        let out = self
            .command("curl")
            .args(["-s", "-m", "2", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{port}{path}")])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// Moves the calling thread into the named network namespace.
pub fn enter(name: &str) {
    let ns = File::open(format!("/var/run/netns/{name}")).expect("open netns");
    // SAFETY: setns(2) with a valid namespace fd moves only the calling thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Connects `a` (in `ans`, address `aip/24`) and `b` (in `bns`, `bip/24`) with a veth pair.
pub fn veth(a: &str, ans: &Netns, aip: &str, b: &str, bns: &Netns, bip: &str) {
    assert!(a.len() <= 15 && b.len() <= 15, "interface names too long: {a} {b}");
    sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    sh(&["ip", "link", "set", a, "netns", &ans.name]);
    sh(&["ip", "link", "set", b, "netns", &bns.name]);
    ans.exec(&["ip", "addr", "add", &format!("{aip}/24"), "dev", a]);
    bns.exec(&["ip", "addr", "add", &format!("{bip}/24"), "dev", b]);
    ans.exec(&["ip", "link", "set", a, "up"]);
    bns.exec(&["ip", "link", "set", b, "up"]);
}

/// Where a [`Proc`]'s stdout goes.
enum Stdout {
    Discard,
    Into(File),
    Capture,
}

/// A child process killed (SIGKILL) on drop, even when the test panics;
/// its stderr (and, when captured, stdout) goes to temporary files.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Where its stderr goes.
    pub stderr_path: PathBuf,
    stdout_path: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Spawns `cmd` with stdout discarded and stderr to a temporary file.
    pub fn spawn(cmd: Command) -> Proc {
        Proc::start(cmd, Stdio::null(), Stdout::Discard)
    }

    /// Spawns `cmd` with stdin as given, stdout into `stdout` and stderr to a temporary file.
    pub fn spawn_with(cmd: Command, stdin: Stdio, stdout: File) -> Proc {
        Proc::start(cmd, stdin, Stdout::Into(stdout))
    }

    /// Spawns `cmd` with stdout and stderr to temporary files, for [`Proc::wait_output`].
    pub fn spawn_capturing(cmd: Command) -> Proc {
        Proc::start(cmd, Stdio::null(), Stdout::Capture)
    }

    fn start(mut cmd: Command, stdin: Stdio, stdout: Stdout) -> Proc {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr_path = dir.path().join("stderr");
        let stdout_path = matches!(stdout, Stdout::Capture).then(|| dir.path().join("stdout"));
        let stdout = match (stdout, &stdout_path) {
            (Stdout::Into(f), _) => Stdio::from(f),
            (Stdout::Capture, Some(p)) => Stdio::from(File::create(p).expect("stdout file")),
            _ => Stdio::null(),
        };
        let child = cmd
            .stdin(stdin)
            .stdout(stdout)
            .stderr(File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn");
        Proc { child, stderr_path, stdout_path, _dir: dir }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_to_string(&self.stderr_path)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Waits up to `timeout` for the exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the exit (panicking with its stderr when it
    /// does not come) and returns status, stdout and stderr.
    pub fn wait_output(&mut self, timeout: Duration) -> Output {
        let status = self.wait_timeout(timeout);
        let stderr = self.stderr();
        let status = status.unwrap_or_else(|| panic!("process still running after {timeout:?}: {stderr}"));
        let stdout =
            self.stdout_path.as_deref().map(|p| std::fs::read(p).unwrap_or_default()).unwrap_or_default();
        Output { status, stdout, stderr: stderr.into_bytes() }
    }

    /// Panics with its stderr if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("process exited with {status}: {}", self.stderr());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that the golden file `golden` holds `got`, what `maker` writes
/// now; with `BPC_REGEN` set, rewrites it first (then review the diff).
pub fn golden(golden: &str, got: &[u8], maker: &str) {
    if std::env::var_os("BPC_REGEN").is_some() {
        std::fs::write(golden, got).unwrap_or_else(|e| panic!("{golden}: {e}"));
    }
    let want = std::fs::read(golden).unwrap_or_else(|e| panic!("{golden}: {e} (BPC_REGEN=1 writes it)"));
    assert!(
        want == got,
        "{golden} differs from what {maker} makes now (BPC_REGEN=1 rewrites it; review why)"
    );
}

/// `tshark -r FILE -n ARGS...`'s standard output, the outside decoder the
/// tests read every file and stream with; a failing tshark fails the test.
pub fn tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark").arg("-r").arg(file).arg("-n").args(args).output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {} {args:?}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
