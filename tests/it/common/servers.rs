//! Real servers on loopback for the off-site targets: a private sshd
//! (Debian's openssh-server) and a local S3 server (moto, from PyPI in the
//! venv that tests/setup.sh makes). Each test starts its own; dropping one
//! stops it.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::describe;

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} ended ({status}): {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port}");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A private sshd on 127.0.0.1 with its own host key, letting root in with
/// one key, and a client home whose `.ssh/id_rsa_miab` is that key.
pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    child: Child,
    /// HOME for mailbackup: `.ssh/id_rsa_miab` is the authorized key.
    pub home: PathBuf,
    /// STATE_DIRECTORY for mailbackup: its known_hosts.
    pub state: PathBuf,
    /// An empty directory on the server for the backups.
    pub remote: PathBuf,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::Builder::new().prefix("sshd").tempdir().unwrap();
        let home = dir.path().join("home");
        let state = dir.path().join("state");
        let remote = dir.path().join("remote");
        for d in [home.join(".ssh"), state.clone(), remote.clone()] {
            fs::create_dir_all(d).unwrap();
        }
        let key = home.join(".ssh/id_rsa_miab");
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "mailbackup-test",
                "-f",
            ])
            .arg(&key));
        fs::copy(
            key.with_extension("pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let mut sshd = Sshd {
            port: free_port(),
            child: Command::new("true").spawn().unwrap(),
            dir,
            home,
            state,
            remote,
        };
        sshd.new_host_key();
        sshd.launch();
        sshd
    }

    /// Authorizes one more public key (a line of an `id_*.pub` file).
    pub fn authorize(&self, public_key: &str) {
        fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap()
            .write_all(format!("{}\n", public_key.trim()).as_bytes())
            .unwrap();
    }

    fn new_host_key(&self) {
        let host_key = self.dir.path().join("host_key");
        let _ = fs::remove_file(&host_key);
        let _ = fs::remove_file(host_key.with_extension("pub"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key));
    }

    fn launch(&mut self) {
        let d = self.dir.path();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
                port = self.port,
                d = d.display()
            ),
        )
        .unwrap();
        fs::create_dir_all("/run/sshd").unwrap();
        let log = d.join("sshd.log");
        self.child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("/usr/sbin/sshd is missing: run tests/setup.sh first");
        wait_for_port(self.port, &mut self.child, "sshd", &log);
    }

    /// The server gets a new host key, as a reinstalled or a spoofed one would.
    pub fn change_host_key(&mut self) {
        self.stop();
        self.new_host_key();
        self.launch();
    }

    /// The target URL of the backup directory, as custom.yaml spells it.
    pub fn target(&self) -> String {
        format!(
            "rsync://root@127.0.0.1:{}/{}",
            self.port,
            self.remote.display()
        )
    }

    /// What lies in the backup directory on the server.
    pub fn remote_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.remote)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The venv with moto and boto3 that tests/setup.sh makes.
pub fn moto_venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/moto");
    assert!(
        venv.join("bin/moto_server").exists(),
        "{} is missing: run tests/setup.sh first",
        venv.display()
    );
    venv
}

/// A local S3 server that checks signatures: moto, with IAM enforced after
/// the three requests that create the one user and its key.
pub struct Moto {
    pub port: u16,
    child: Child,
    _log_dir: TempDir,
    pub key_id: String,
    pub secret: String,
}

impl Moto {
    pub fn start() -> Moto {
        let venv = moto_venv();
        let log_dir = tempfile::Builder::new().prefix("moto").tempdir().unwrap();
        let log = log_dir.path().join("moto.log");
        let port = free_port();
        let mut child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "moto_server", &log);
        let mut moto = Moto {
            port,
            child,
            _log_dir: log_dir,
            key_id: String::new(),
            secret: String::new(),
        };
        let out = moto.tool(&["bootstrap"], None);
        let (k, s) = out.trim().split_once(' ').unwrap();
        moto.key_id = k.to_owned();
        moto.secret = s.to_owned();
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn tool(&self, args: &[&str], input: Option<&str>) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/s3.py");
        let mut cmd = Command::new(moto_venv().join("bin/python"));
        cmd.arg(script).arg(format!("http://{}", self.endpoint()));
        if args != ["bootstrap"] {
            cmd.args([&self.key_id, &self.secret]);
        }
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.unwrap_or("").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "s3.py {args:?}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.tool(&["mb", bucket], None);
    }

    /// Puts objects of the given sizes.
    pub fn put(&self, bucket: &str, objects: &[(String, u64)]) {
        let input: String = objects.iter().map(|(k, s)| format!("{k} {s}\n")).collect();
        self.tool(&["put", bucket], Some(&input));
    }

    /// Every key in a bucket, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .tool(&["keys", bucket], None)
            .lines()
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys
    }

    /// The settings file for a bucket (and prefix) on this server.
    pub fn custom_yaml(&self, bucket_and_prefix: &str) -> String {
        format!(
            "target: s3+http://{}/{bucket_and_prefix}\ntarget_user: {}\ntarget_pass: '{}'\n",
            self.endpoint(),
            self.key_id,
            self.secret
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
