//! `-Z USER`: give up root once the capture devices and the savefile are
//! open, as tcpdump(8) does: supplementary groups from the group database
//! (initgroups(3)), then the user's primary group (setgid(2)), then the
//! user (setuid(2), which for root sets the real, effective and saved IDs).
//! Any failure is an error: the capture does not go on with privileges the
//! user asked to give up.

use std::ffi::CString;

use nix::unistd::{self, Gid, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("-Z {0}: no such user")]
    NoSuchUser(String),
    #[error("-Z {user}: cannot look the user up: {message}")]
    Lookup { user: String, message: String },
    #[error("-Z {user}: changing user needs root (xmppscope runs as uid {uid})")]
    NotRoot { user: String, uid: u32 },
    #[error("-Z {user}: {step} failed: {message}; not going on with root privileges")]
    Failed {
        user: String,
        step: &'static str,
        message: String,
    },
}

/// Who the process became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Hand `path` to `name` (owner and group), so that it stays usable after
/// [`drop_to`] (the TUI's temporary capture file is re-read by offset).
///
/// # Errors
/// No such user, or the owner cannot be changed.
pub fn give_to(path: &std::path::Path, name: &str) -> std::io::Result<()> {
    let user = User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| std::io::Error::other(format!("no such user: {name}")))?;
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
}

/// Become `name`.
///
/// # Errors
/// The user does not exist, the process is not root, or a step fails.
pub fn drop_to(name: &str) -> Result<Dropped, PrivError> {
    let user = User::from_name(name)
        .map_err(|e| PrivError::Lookup {
            user: name.to_owned(),
            message: e.desc().to_owned(),
        })?
        .ok_or_else(|| PrivError::NoSuchUser(name.to_owned()))?;
    let done = Dropped {
        user: name.to_owned(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    };
    if !unistd::geteuid().is_root() {
        if unistd::getuid() == user.uid && unistd::geteuid() == user.uid {
            return Ok(done);
        }
        return Err(PrivError::NotRoot {
            user: name.to_owned(),
            uid: unistd::geteuid().as_raw(),
        });
    }
    let failed = |step: &'static str, e: nix::Error| PrivError::Failed {
        user: name.to_owned(),
        step,
        message: e.desc().to_owned(),
    };
    let cname = CString::new(name).map_err(|_| PrivError::NoSuchUser(name.to_owned()))?;
    unistd::initgroups(&cname, user.gid).map_err(|e| failed("initgroups", e))?;
    unistd::setgid(user.gid).map_err(|e| failed("setgid", e))?;
    unistd::setuid(user.uid).map_err(|e| failed("setuid", e))?;
    verify(name, user.uid, user.gid)?;
    Ok(done)
}

/// Check that the IDs are what was asked for and that root cannot be had
/// back.
fn verify(name: &str, uid: Uid, gid: Gid) -> Result<(), PrivError> {
    let bad = |what: String| PrivError::Failed {
        user: name.to_owned(),
        step: "verification",
        message: what,
    };
    if unistd::getuid() != uid || unistd::geteuid() != uid {
        return Err(bad(format!(
            "uid is {}/{} instead of {uid}",
            unistd::getuid(),
            unistd::geteuid()
        )));
    }
    if unistd::getgid() != gid || unistd::getegid() != gid {
        return Err(bad(format!(
            "gid is {}/{} instead of {gid}",
            unistd::getgid(),
            unistd::getegid()
        )));
    }
    if !uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(bad("root could be regained".into()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_named() {
        let e = drop_to("no-such-user-xmppscope").unwrap_err();
        assert_eq!(e.to_string(), "-Z no-such-user-xmppscope: no such user");
    }

    /// The current user is always allowed (nothing to change) when not
    /// root; as root this would drop the test process's privileges, so it
    /// only runs unprivileged.
    #[test]
    fn same_user_is_a_no_op_when_unprivileged() {
        if unistd::geteuid().is_root() {
            return;
        }
        let me = User::from_uid(unistd::getuid()).unwrap().unwrap();
        assert_eq!(drop_to(&me.name).unwrap().uid, me.uid.as_raw());
    }
}
