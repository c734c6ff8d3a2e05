//! The sentinel port's users, as Redis's ACL knows them: who may log in and
//! with which passwords (`ACL SETUSER name on >password`, `AUTH user pass`).
//!
//! Redis Sentinel 7 has the ACL, and operators use it to lock the sentinel
//! port down (`ACL SETUSER default off`); peers then log in with
//! `sentinel-user`/`sentinel-pass`. The proxy keeps what decides who gets in:
//! users, on/off, passwords, `nopass`. Command, key and channel rules
//! (`+@all`, `~*`, `&*`) are accepted and not enforced: every user that may
//! log in may run every command of the sentinel port.
//!
//! Pure: the connections share one [`Users`] behind a lock and act on what it
//! answers (closing the connections of a deleted user is theirs).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::secret::same_secret;

/// The user every connection starts as.
pub(super) const DEFAULT_USER: &str = "default";

/// One user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct User {
    /// May log in.
    on: bool,
    /// Any password (or none) logs in.
    nopass: bool,
    /// The passwords that log in.
    passwords: Vec<String>,
}

/// Every user of the sentinel port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    /// By name.
    users: BTreeMap<String, User>,
}

impl Users {
    /// Only the default user: on, with `requirepass` as its password, or
    /// `nopass` without one (Redis's start-up state).
    pub fn new(requirepass: Option<&str>) -> Users {
        let default = User {
            on: true,
            nopass: requirepass.is_none(),
            passwords: requirepass.map(str::to_owned).into_iter().collect(),
        };
        Users {
            users: BTreeMap::from([(DEFAULT_USER.to_owned(), default)]),
        }
    }

    /// Whether a new connection is logged in as the default user without
    /// `AUTH` (the default user is on and needs no password).
    pub(super) fn open_by_default(&self) -> bool {
        self.users
            .get(DEFAULT_USER)
            .is_some_and(|u| u.on && u.nopass)
    }

    /// Whether `AUTH password` (no user name) has a password to check:
    /// Redis refuses the one-argument form while the default user is `nopass`.
    pub(super) fn default_has_password(&self) -> bool {
        self.users.get(DEFAULT_USER).is_some_and(|u| !u.nopass)
    }

    /// Whether `name` may log in with `pass` (compared in constant time).
    pub(super) fn login(&self, name: &[u8], pass: &[u8]) -> bool {
        let Some(user) = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.users.get(n))
        else {
            return false;
        };
        user.on
            && (user.nopass
                || user
                    .passwords
                    .iter()
                    .any(|p| same_secret(pass, p.as_bytes())))
    }

    /// `ACL SETUSER name rule…`: creates the user (off, no password) if new,
    /// then applies the rules in order; a bad rule changes nothing.
    pub(super) fn set_user(&mut self, name: &str, rules: &[Bytes]) -> Result<(), String> {
        let mut user = self.users.get(name).cloned().unwrap_or_default();
        for rule in rules {
            let text = String::from_utf8_lossy(rule);
            let lower = text.to_ascii_lowercase();
            match lower.as_str() {
                "on" => user.on = true,
                "off" => user.on = false,
                "nopass" => {
                    user.nopass = true;
                    user.passwords.clear();
                }
                "resetpass" => {
                    user.nopass = false;
                    user.passwords.clear();
                }
                "reset" => user = User::default(),
                _ if text.starts_with('>') => {
                    let password = text[1..].to_owned();
                    user.nopass = false;
                    if !user.passwords.contains(&password) {
                        user.passwords.push(password);
                    }
                }
                _ if text.starts_with('<') => {
                    let password = &text[1..];
                    user.passwords.retain(|p| p != password);
                }
                // Permissions: accepted, not enforced (see the module doc).
                "allcommands"
                | "nocommands"
                | "allkeys"
                | "resetkeys"
                | "allchannels"
                | "resetchannels"
                | "sanitize-payload"
                | "skip-sanitize-payload"
                | "clearselectors" => {}
                _ if text.starts_with(['+', '-', '~', '%', '&', '(']) => {}
                _ => {
                    return Err(format!(
                        "ERR Error in ACL SETUSER modifier '{}': Syntax error",
                        super::encode::shown(rule)
                    ));
                }
            }
        }
        self.users.insert(name.to_owned(), user);
        Ok(())
    }

    /// `ACL DELUSER name…`: the names of the users removed (the default user
    /// cannot be).
    pub(super) fn delete(&mut self, names: &[Bytes]) -> Result<Vec<String>, String> {
        let names: Vec<String> = names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        if names.iter().any(|n| n == DEFAULT_USER) {
            return Err("ERR The 'default' user cannot be removed".to_owned());
        }
        Ok(names
            .into_iter()
            .filter(|n| self.users.remove(n).is_some())
            .collect())
    }

    /// Every user's name, in order.
    pub(super) fn names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    /// The suite's sequence: a user with a password, the default user off,
    /// then on again and the user deleted.
    #[test]
    fn users_log_in_as_redis_acl_says() {
        let mut users = Users::new(None);
        assert!(users.open_by_default());
        users
            .set_user("testuser", &rules(&[">secret", "+@all", "on"]))
            .expect("setuser");
        users.set_user("default", &rules(&["off"])).expect("off");
        assert!(!users.open_by_default());
        assert!(users.login(b"testuser", b"secret"));
        assert!(!users.login(b"testuser", b"wrong"));
        assert!(!users.login(b"default", b""));
        assert!(users.set_user("x", &rules(&["bogus"])).is_err());
        users.set_user("default", &rules(&["on"])).expect("on");
        assert_eq!(
            users.delete(&rules(&["testuser", "nobody"])),
            Ok(vec!["testuser".to_owned()])
        );
        assert!(users.delete(&rules(&["default"])).is_err());
        assert_eq!(users.names(), vec!["default".to_owned()]);
    }

    #[test]
    fn requirepass_is_the_default_users_password() {
        let users = Users::new(Some("hunter2"));
        assert!(!users.open_by_default());
        assert!(users.default_has_password());
        assert!(users.login(b"default", b"hunter2"));
    }
}
