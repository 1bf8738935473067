//! The duplicity that runs now: the signals that would end mailbackup
//! are passed on to it, so that mailbackup sees it end and cleans up after
//! it; and one that hangs after a fatal error (duplicity 0.8 does, when a
//! restore runs out of room) is ended.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The process id of the duplicity that runs now, 0 for none.
static RUNNING: AtomicI32 = AtomicI32::new(0);
/// How many signals arrived since [`pass_signals_on`].
static SIGNALS: AtomicU32 = AtomicU32::new(0);
/// In a step that must not be cut short ([`unbroken`]).
static UNBROKEN: AtomicBool = AtomicBool::new(false);
/// [`pass_signals_on`] was called.
static PASSING: AtomicBool = AtomicBool::new(false);

/// How long duplicity has to end after it failed for good.
pub const GRACE: Duration = Duration::from_secs(10);

/// From now on, SIGINT, SIGTERM and SIGHUP do not end mailbackup: the first
/// goes on to the running duplicity and the gpg it runs (duplicity then
/// runs in a process group of its own: [`own_group`]; a duplicity whose gpg
/// did not get the signal waits for it for ever), a second kills them
/// (SIGKILL). With no duplicity running, the first is remembered
/// ([`interrupted`]: the next duplicity is not started) and a second ends
/// mailbackup at once, unless it is in an [`unbroken`] step.
pub fn pass_signals_on() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(pass_on),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only reads and writes atomics and calls
        // kill(2) and _exit(2), which are async-signal-safe.
        unsafe { sigaction(signal, &action) }
            .with_context(|| format!("Failed to set up the handling of {signal}"))?;
    }
    PASSING.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether duplicity gets a process group of its own, which signals are
/// passed on to: only when they are ([`pass_signals_on`]). Otherwise it
/// stays in mailbackup's, so that a Ctrl-C reaches it with mailbackup.
pub fn own_group() -> bool {
    PASSING.load(Ordering::SeqCst)
}

extern "C" fn pass_on(signal: libc::c_int) {
    let earlier = SIGNALS.fetch_add(1, Ordering::SeqCst);
    let pid = RUNNING.load(Ordering::SeqCst);
    if pid > 0 {
        let signal = if earlier == 0 { signal } else { libc::SIGKILL };
        // SAFETY: kill(2) is async-signal-safe. duplicity leads its own
        // process group (see `own_group`): the group is it and its gpg.
        unsafe { libc::kill(-pid, signal) };
    } else if earlier > 0 && !UNBROKEN.load(Ordering::SeqCst) {
        // SAFETY: _exit(2) is async-signal-safe.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Runs `step` (say, a swap with the mail stopped) without a signal
/// ending mailbackup half way.
pub fn unbroken<T>(step: impl FnOnce() -> T) -> T {
    UNBROKEN.store(true, Ordering::SeqCst);
    let result = step();
    UNBROKEN.store(false, Ordering::SeqCst);
    result
}

/// A signal arrived since [`pass_signals_on`].
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

/// Marks a duplicity as the running one until dropped.
pub struct Running;

impl Running {
    /// `pid` runs now; when a signal came before, it gets SIGINT at once.
    pub fn start(pid: u32) -> Running {
        let pid = i32::try_from(pid).unwrap_or(0);
        RUNNING.store(pid, Ordering::SeqCst);
        if interrupted() && pid > 0 {
            // SAFETY: a plain kill(2) of our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGINT) };
        }
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(0, Ordering::SeqCst);
    }
}

/// Watches duplicity `pid` until `done`: once `failed` is set (it said it
/// failed for good), it has `grace` ([`GRACE`]) to end, then it is killed.
/// Returns whether it was.
pub fn end_if_hung(pid: u32, failed: &AtomicBool, done: &AtomicBool, grace: Duration) -> bool {
    let mut since: Option<Instant> = None;
    while !done.load(Ordering::SeqCst) {
        if failed.load(Ordering::SeqCst) {
            let since = *since.get_or_insert_with(Instant::now);
            if since.elapsed() >= grace {
                if let Ok(pid) = i32::try_from(pid) {
                    let target = if own_group() { -pid } else { pid };
                    // SAFETY: a plain kill(2) of our own child (or its
                    // group), not waited for yet: the pid is still its.
                    unsafe { libc::kill(target, libc::SIGKILL) };
                }
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A line of duplicity's that says it failed for good for lack of room:
/// the last line of its traceback (indented, as duplicity logs it). A file
/// it could not write or patch is a warning instead (`Error '[Errno 28] …'
/// patching FILE`), and it goes on.
pub fn fatal_no_room(line: &[u8]) -> bool {
    let line = line.trim_ascii_start();
    [&b"OSError: [Errno 28]"[..], b"IOError: [Errno 28]"]
        .iter()
        .any(|start| line.starts_with(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceback_for_lack_of_room_is_fatal_a_patching_warning_is_not() {
        assert!(fatal_no_room(
            b"OSError: [Errno 28] No space left on device"
        ));
        assert!(!fatal_no_room(
            b"Error '[Errno 28] No space left on device' patching mail/a"
        ));
        assert!(!fatal_no_room(b"OSError: [Errno 2] No such file"));
    }

    #[test]
    fn a_hung_duplicity_is_killed_after_the_grace_and_a_finished_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let (failed, done) = (AtomicBool::new(true), AtomicBool::new(false));
        let grace = Duration::from_millis(300);
        let started = Instant::now();
        assert!(end_if_hung(child.id(), &failed, &done, grace));
        assert!(started.elapsed() >= grace);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));

        let (failed, done) = (AtomicBool::new(false), AtomicBool::new(true));
        assert!(!end_if_hung(1, &failed, &done, grace));
    }
}
