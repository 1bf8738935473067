//! Files relative to open directories (`openat`, `linkat`, `mkdirat`, …):
//! no limit on the length of a path but the kernel's 255 bytes a name, and
//! no race with a directory swapped for a symlink half way. The snapshot
//! walks trees with these; the rest of the code sees plain Rust types.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, Whence};

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    fn of_mode(mode: u32) -> Kind {
        match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFSOCK => Kind::Socket,
            SFlag::S_IFCHR => Kind::CharDevice,
            SFlag::S_IFBLK => Kind::BlockDevice,
            _ => Kind::File,
        }
    }

    fn of_entry(t: Type) -> Kind {
        match t {
            Type::Directory => Kind::Dir,
            Type::Symlink => Kind::Symlink,
            Type::Fifo => Kind::Fifo,
            Type::Socket => Kind::Socket,
            Type::CharacterDevice => Kind::CharDevice,
            Type::BlockDevice => Kind::BlockDevice,
            Type::File => Kind::File,
        }
    }
}

/// What the snapshot keeps of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits with set-uid, set-gid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub dev: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

impl From<FileStat> for Stat {
    fn from(s: FileStat) -> Stat {
        Stat {
            kind: Kind::of_mode(s.st_mode),
            mode: s.st_mode & 0o7777,
            uid: s.st_uid,
            gid: s.st_gid,
            size: s.st_size as u64,
            dev: s.st_dev,
            atime: (s.st_atime, s.st_atime_nsec),
            mtime: (s.st_mtime, s.st_mtime_nsec),
        }
    }
}

fn io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn timespec((secs, nanos): (i64, i64)) -> TimeSpec {
    TimeSpec::new(secs, nanos)
}

/// A directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: Option<Kind>,
    pub ino: u64,
}

/// An open directory. Shared between threads: every call names an entry
/// relative to it.
#[derive(Debug)]
pub struct DirFd(OwnedFd);

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl DirFd {
    /// Opens the directory at `path` (which must not be a symlink).
    pub fn open(path: &Path) -> io::Result<DirFd> {
        fcntl::open(path, DIR_FLAGS, Mode::empty())
            .map(DirFd)
            .map_err(io)
    }

    /// Opens the subdirectory `name`, never following a symlink.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<DirFd> {
        fcntl::openat(&self.0, name, DIR_FLAGS, Mode::empty())
            .map(DirFd)
            .map_err(io)
    }

    /// Creates the subdirectory `name`, private until its attributes are
    /// set, and opens it.
    pub fn make_dir(&self, name: &OsStr) -> io::Result<DirFd> {
        stat::mkdirat(&self.0, name, Mode::S_IRWXU).map_err(io)?;
        self.open_dir(name)
    }

    /// This directory's own attributes.
    pub fn stat(&self) -> io::Result<Stat> {
        stat::fstat(&self.0).map(Stat::from).map_err(io)
    }

    /// The attributes of the entry `name`, not following a symlink.
    pub fn stat_at(&self, name: &OsStr) -> io::Result<Stat> {
        stat::fstatat(&self.0, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map(Stat::from)
            .map_err(io)
    }

    /// Whether `name` is a directory here.
    pub fn has_dir(&self, name: &str) -> bool {
        self.stat_at(OsStr::new(name))
            .is_ok_and(|s| s.kind == Kind::Dir)
    }

    /// The entries, without `.` and `..`, with their inode numbers and,
    /// where the filesystem tells it without a stat, their kinds.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let fd = self.0.try_clone()?;
        let mut dir = Dir::from_fd(fd).map_err(io)?;
        let mut entries = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            entries.push(Entry {
                name: OsStr::from_bytes(name).to_owned(),
                kind: entry.file_type().map(Kind::of_entry),
                ino: entry.ino(),
            });
        }
        Ok(entries)
    }

    /// The first bytes (up to `len`) of the regular file `name`, never
    /// following a symlink nor waiting on a FIFO put in its place.
    pub fn read_head(&self, name: &OsStr, len: usize) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let fd = fcntl::openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        let mut head = Vec::with_capacity(len);
        File::from(fd).take(len as u64).read_to_end(&mut head)?;
        Ok(head)
    }

    /// Removes the entry `name`, a whole tree if it is a directory.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match unistd::unlinkat(&self.0, name, unistd::UnlinkatFlags::NoRemoveDir) {
            Err(Errno::EISDIR) => {
                let dir = self.open_dir(name)?;
                for entry in dir.entries()? {
                    dir.remove(&entry.name)?;
                }
                unistd::unlinkat(&self.0, name, unistd::UnlinkatFlags::RemoveDir).map_err(io)
            }
            other => other.map_err(io),
        }
    }

    /// Hard-links the entry `name` to the same name in `to`; a symlink is
    /// linked itself, not its target.
    pub fn link_to(&self, name: &OsStr, to: &DirFd) -> io::Result<()> {
        unistd::linkat(&self.0, name, &to.0, name, AtFlags::empty()).map_err(io)
    }

    /// Copies the regular file `name` to the same name in `to`, keeping its
    /// holes, then gives the copy the owner, mode and times of `meta`.
    /// Returns the bytes of data copied.
    pub fn copy_file_to(&self, name: &OsStr, to: &DirFd, meta: &Stat) -> io::Result<u64> {
        let src = fcntl::openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        let dst = fcntl::openat(
            &to.0,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(io)?;
        let (src, dst) = (File::from(src), File::from(dst));
        let copied = copy_sparse(&src, &dst, meta.size)?;
        set_fd_attributes(&dst, meta)?;
        Ok(copied)
    }

    /// Recreates the symlink `name` in `to`, with its owner and times.
    pub fn copy_symlink_to(&self, name: &OsStr, to: &DirFd, meta: &Stat) -> io::Result<()> {
        let target = fcntl::readlinkat(&self.0, name).map_err(io)?;
        unistd::symlinkat(target.as_os_str(), &to.0, name).map_err(io)?;
        to.set_attributes_at(name, meta)
    }

    /// Recreates the FIFO `name` in `to`, with its owner, mode and times.
    pub fn copy_fifo_to(&self, name: &OsStr, to: &DirFd, meta: &Stat) -> io::Result<()> {
        unistd::mkfifoat(&to.0, name, Mode::S_IRUSR | Mode::S_IWUSR).map_err(io)?;
        to.set_attributes_at(name, meta)
    }

    /// Gives this directory the owner, mode and times of `meta`.
    pub fn set_attributes(&self, meta: &Stat) -> io::Result<()> {
        set_fd_attributes(&self.0, meta)
    }

    /// Gives the entry `name` (a symlink itself, not its target) the owner,
    /// mode and times of `meta`. The mode is left alone for a symlink.
    pub fn set_attributes_at(&self, name: &OsStr, meta: &Stat) -> io::Result<()> {
        let nofollow = AtFlags::AT_SYMLINK_NOFOLLOW;
        unistd::fchownat(
            &self.0,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            nofollow,
        )
        .map_err(io)?;
        if meta.kind != Kind::Symlink {
            // After the owner: a chown clears set-id bits.
            stat::fchmodat(
                &self.0,
                name,
                Mode::from_bits_retain(meta.mode),
                stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(io)?;
        }
        stat::utimensat(
            &self.0,
            name,
            &timespec(meta.atime),
            &timespec(meta.mtime),
            stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io)?;
        if meta.kind != Kind::Symlink {
            check_mode(self.stat_at(name)?.mode, meta.mode)?;
        }
        Ok(())
    }
}

/// Owner, then mode (a chown clears set-id bits), then times; and a check
/// that the kernel kept every bit: without CAP_FSETID it silently drops a
/// set-gid bit whose group the process is not in.
fn set_fd_attributes(fd: impl AsFd + Copy, meta: &Stat) -> io::Result<()> {
    unistd::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(io)?;
    stat::fchmod(fd, Mode::from_bits_retain(meta.mode)).map_err(io)?;
    stat::futimens(fd, &timespec(meta.atime), &timespec(meta.mtime)).map_err(io)?;
    check_mode(stat::fstat(fd).map_err(io)?.st_mode & 0o7777, meta.mode)
}

fn check_mode(got: u32, want: u32) -> io::Result<()> {
    if got == want {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "the kernel set mode {got:04o} instead of {want:04o} (set-id bits need CAP_FSETID)"
        ),
    ))
}

/// Copies the data of `src` (of `len` bytes) to the empty `dst`, leaving
/// holes as holes; returns the bytes of data copied.
fn copy_sparse(src: &File, dst: &File, len: u64) -> io::Result<u64> {
    let len = len as i64;
    let mut copied = 0u64;
    let mut pos = 0i64;
    while pos < len {
        let data = match unistd::lseek(src, pos, Whence::SeekData) {
            Ok(d) => d,
            // No data past pos: the rest is a hole.
            Err(Errno::ENXIO) => break,
            // A filesystem without SEEK_DATA: all of it is data.
            Err(Errno::EINVAL) if pos == 0 => 0,
            Err(e) => return Err(io(e)),
        };
        let hole = match unistd::lseek(src, data, Whence::SeekHole) {
            Ok(h) => h.min(len),
            Err(Errno::EINVAL) => len,
            Err(e) => return Err(io(e)),
        };
        copy_range(src, dst, data, hole)?;
        copied += (hole - data) as u64;
        pos = hole;
    }
    // The file's full length, with a trailing hole where there is one.
    unistd::ftruncate(dst, len).map_err(io)?;
    Ok(copied)
}

/// Copies bytes `from..to` of `src` to the same place in `dst`.
fn copy_range(src: &File, dst: &File, from: i64, to: i64) -> io::Result<()> {
    let (mut off_in, mut off_out) = (from, from);
    while off_in < to {
        let want = (to - off_in).min(1 << 30) as usize;
        match fcntl::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
            Ok(0) => break, // the file shrank meanwhile
            Ok(_) => {}
            Err(Errno::EXDEV | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EINVAL) => {
                return copy_range_by_reads(src, dst, off_in, to)
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}

fn copy_range_by_reads(src: &File, dst: &File, mut from: i64, to: i64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    while from < to {
        let want = ((to - from) as usize).min(buf.len());
        let n = src.read_at(&mut buf[..want], from as u64)?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], from as u64)?;
        from += n as i64;
    }
    Ok(())
}

/// Whether a link failed because its inode has as many links as it can.
pub fn too_many_links(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::EMLINK as i32)
}

/// Renames `from` to `to` unless `to` exists (`renameat2` with
/// `RENAME_NOREPLACE`): a plain rename would replace an empty directory.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft limit of open files to the hard one: a walk holds a
/// descriptor for every directory it is inside of, on every thread.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sparse_file_stays_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"middle", 32 << 20).unwrap();
        drop(f);
        let d = DirFd::open(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("to")).unwrap();
        let to = d.open_dir(OsStr::new("to")).unwrap();
        let meta = d.stat_at(OsStr::new("sparse")).unwrap();
        let copied = d.copy_file_to(OsStr::new("sparse"), &to, &meta).unwrap();
        assert!(copied < 1 << 20, "copied {copied} bytes of data");
        let copy = dir.path().join("to/sparse");
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&path).unwrap());
        assert!(std::fs::metadata(&copy).unwrap().blocks() * 512 < 1 << 20);
    }

    #[test]
    fn trees_are_removed_relative_to_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/a/b")).unwrap();
        std::fs::write(dir.path().join("t/a/b/f"), "x").unwrap();
        std::fs::write(dir.path().join("g"), "y").unwrap();
        let d = DirFd::open(dir.path()).unwrap();
        let names: Vec<_> = d.entries().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 2);
        d.remove(OsStr::new("t")).unwrap();
        d.remove(OsStr::new("g")).unwrap();
        assert_eq!(d.entries().unwrap(), []);
    }

    #[test]
    fn modes_that_do_not_stick_are_errors() {
        assert!(check_mode(0o2775, 0o2775).is_ok());
        let e = check_mode(0o775, 0o2775).unwrap_err().to_string();
        assert!(e.contains("CAP_FSETID"), "{e}");
    }
}
