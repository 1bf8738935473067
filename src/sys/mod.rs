//! The calls into the operating system below the standard library: `nix`
//! where it has a safe wrapper, the C library where it has none. The rest
//! of the code sees plain Rust types.

pub mod fs;
pub mod lock;

use std::ffi::CStr;

use crate::status::pytime::LocalZone;

/// `localtime_r(t)`: the UTC offset in seconds east, whether DST is in
/// effect, and the zone's abbreviation.
fn localtime(t: i64) -> (i64, bool, String) {
    let t = t as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in; tm_zone points
    // into the C library's static zone data, valid for the process.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return (0, false, "UTC".to_owned());
        }
        let name = if tm.tm_zone.is_null() {
            String::new()
        } else {
            CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
        };
        (tm.tm_gmtoff, tm.tm_isdst > 0, name)
    }
}

/// The local zone (from `TZ` or `/etc/localtime`) as Python on glibc sees it
/// at the Unix time `now`: probed near the start of the year and half a year
/// later, exactly as CPython's `time` module does.
pub fn python_local_zone(now: i64) -> LocalZone {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset only reads TZ and the zone files.
    unsafe { tzset() };
    const YEAR: i64 = (365 * 24 + 6) * 3600;
    let start = now.div_euclid(YEAR) * YEAR;
    let (jan_offset, _, jan_name) = localtime(start);
    let (jul_offset, _, jul_name) = localtime(start + YEAR / 2);
    LocalZone::from_probes(
        (jan_offset, jan_name),
        (jul_offset, jul_name),
        Box::new(|t| localtime(t).1),
    )
}

/// The bytes an unprivileged user may still write on the filesystem of `path`.
pub fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(st.blocks_available() * st.fragment_size())
}

/// The cgroup hierarchy that systemd runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupHierarchy {
    /// cgroup v2 only: units can be frozen.
    Unified,
    /// v1 controllers with v2 beside them (`/sys/fs/cgroup/unified`).
    Hybrid,
    /// cgroup v1 only.
    Legacy,
}

/// Which cgroup hierarchy `/sys/fs/cgroup` holds.
pub fn cgroup_hierarchy() -> CgroupHierarchy {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let is_v2 = |p: &str| statfs(p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    if is_v2("/sys/fs/cgroup") {
        CgroupHierarchy::Unified
    } else if is_v2("/sys/fs/cgroup/unified") {
        CgroupHierarchy::Hybrid
    } else {
        CgroupHierarchy::Legacy
    }
}

/// The home directory of the user this process runs as, from the password
/// database.
pub fn effective_user_home() -> Option<std::path::PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// Whether `name` is a group in the group database. A failed lookup
/// counts as no such group.
pub fn group_exists(name: &str) -> bool {
    nix::unistd::Group::from_name(name).is_ok_and(|g| g.is_some())
}

/// Whether `name` is a user in the password database. A failed lookup
/// counts as no such user.
pub fn user_exists(name: &str) -> bool {
    nix::unistd::User::from_name(name).is_ok_and(|u| u.is_some())
}

/// Writes `content` to `path` so that a reader sees the old file or the
/// new one, never half of one: into a hidden file beside it, synced, then
/// renamed over it. The new file is readable by all (0644).
pub fn write_aside_and_rename(path: &std::path::Path, content: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&aside)
        .and_then(|mut f| {
            f.write_all(content)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&aside, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written.with_context(|| format!("Failed to write {}", path.display()))
}
