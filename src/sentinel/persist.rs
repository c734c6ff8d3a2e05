//! The Sentinel state that must survive a restart, kept as one TOML file
//! ([`FILE_NAME`]) in `--data-dir`.
//!
//! Above all, the vote: a Sentinel may vote for one leader per epoch, and a
//! restart must not let it vote twice, so `leader` and `leader_epoch` are saved
//! before the vote is answered. The run id, epochs and the known master,
//! replicas and peers are saved too, so a restarted node rejoins as itself.
//!
//! This module only reads and writes the file; it does not decide what to save
//! or when. Of the state's meaning it checks only what could otherwise break
//! the core later: run ids are 40 hex characters, as Sentinel's are.
//!
//! Invariants:
//! * [`save`] is atomic: readers see the old file or the new one, never a mix.
//!   It writes `<FILE_NAME>.tmp`, fsyncs it, renames it over [`FILE_NAME`] and
//!   fsyncs the directory, so after it returns the new state survives a crash;
//! * [`load`] reads only [`FILE_NAME`]; a leftover `.tmp` (a crash mid-save) is
//!   ignored, and the next save overwrites it;
//! * a missing file is "no state yet" (`Ok(None)`); a file that exists but
//!   cannot be read or parsed is an error, never silently replaced by a fresh
//!   state, since that could forget a vote.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The state file's name inside the data directory.
pub const FILE_NAME: &str = "sentinel-proxy.state";

/// The name [`save`] writes to before renaming over [`FILE_NAME`].
const TMP_NAME: &str = "sentinel-proxy.state.tmp";

/// The first line of every saved file, for whoever opens it.
const HEADER: &str = "# sentinel-proxy state: written by the proxy, do not edit while it runs\n";

/// Everything this Sentinel must remember across a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// This Sentinel's run id, kept so peers recognise it after a restart.
    pub myid: String,
    /// The highest epoch this Sentinel has seen.
    pub current_epoch: u64,
    /// The monitored master's name.
    pub master_name: String,
    /// The master's address, `ip:port`.
    pub master: String,
    /// The config epoch under which `master` was learned or promoted.
    pub config_epoch: u64,
    /// Known replicas of the master, `ip:port`.
    pub replicas: Vec<String>,
    /// Known peer Sentinels.
    pub peers: Vec<SavedPeer>,
    /// The run id this node voted for in `leader_epoch`, if any: one vote per
    /// epoch must survive a restart.
    pub leader: Option<String>,
    /// The epoch of the last vote.
    pub leader_epoch: u64,
    /// The groups started at run time by `SENTINEL MONITOR`, besides the
    /// one above (absent in files written before there were any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitored: Vec<SavedGroup>,
    /// The `SENTINEL SET` options given to this group at run time, each as
    /// `[option, value…]`, replayed over its configured settings at start-up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Vec<String>>,
    /// The `SENTINEL CONFIG SET` settings given at run time, each as
    /// `[name, value]`, replayed at start-up (kept with the first group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sentinel_config: Vec<Vec<String>>,
}

/// A group started at run time by `SENTINEL MONITOR`: the settings it was
/// given (and changed with `SENTINEL SET`), and its state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedGroup {
    /// Votes for ODOWN.
    pub quorum: u32,
    /// `down-after-milliseconds`.
    pub down_after_ms: u64,
    /// `failover-timeout`, in milliseconds.
    pub failover_timeout_ms: u64,
    /// `parallel-syncs`.
    pub parallel_syncs: u32,
    /// `master-reboot-down-after-period`, in milliseconds; 0 is off.
    #[serde(default)]
    pub master_reboot_down_after_ms: u64,
    /// `auth-user` for the group's nodes.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// `auth-pass` for the group's nodes.
    #[serde(default)]
    pub auth_pass: Option<String>,
    /// `rename-command`s: original (upper case) to the name the nodes know.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub renamed_commands: std::collections::BTreeMap<String, String>,
    /// The host name its master was given by, if not an IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_host: Option<String>,
    /// Its state (its `myid` and `current_epoch` are the Sentinel's).
    pub state: SavedState,
}

/// A peer Sentinel, as learned from its hello.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPeer {
    /// The peer's address, `ip:port`.
    pub addr: String,
    /// The peer's run id.
    pub run_id: String,
}

/// Why the state file could not be loaded or saved. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The state file exists but could not be read.
    #[error("cannot read state file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The state file is not valid TOML or not a saved state (corrupt).
    #[error("state file {} is corrupt: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, on one line.
        message: String,
    },
    /// The state could not be encoded as TOML. Not expected for [`SavedState`];
    /// there so that an encoder failure is reported, never a panic.
    #[error("cannot encode state for {}: {message}", path.display())]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// The encoder's message, on one line.
        message: String,
    },
    /// The temporary file could not be created, written or fsynced.
    #[error("cannot write state file {}: {source}", path.display())]
    Write {
        /// The temporary file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The temporary file could not be renamed over the state file.
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The state file.
        to: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The data directory could not be fsynced after the rename, so the new
    /// file may not survive a crash.
    #[error("cannot sync data directory {}: {source}", path.display())]
    SyncDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Loads the state saved in `dir`; `Ok(None)` if there is none yet (no file).
pub fn load(dir: &Path) -> Result<Option<SavedState>, PersistError> {
    let path = dir.join(FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    let state: SavedState = toml::from_str(&text).map_err(|e| PersistError::Parse {
        message: parse_message(&text, &e),
        path: path.clone(),
    })?;
    let groups = std::iter::once(&state).chain(state.monitored.iter().map(|g| &g.state));
    let run_ids = groups.flat_map(|state| {
        std::iter::once(("myid", &state.myid))
            .chain(state.peers.iter().map(|p| ("peers.run_id", &p.run_id)))
    });
    for (field, id) in run_ids {
        if !super::hello::is_run_id(id) {
            return Err(PersistError::Parse {
                message: format!("{field} must be 40 hexadecimal characters, not {id:?}"),
                path,
            });
        }
    }
    Ok(Some(state))
}

/// The parser's message on one line, prefixed with the line it points at.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let message = one_line(e.message());
    let line = e
        .span()
        .and_then(|span| text.as_bytes().get(..span.start))
        .map(|before| before.iter().filter(|&&b| b == b'\n').count() + 1);
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

/// Saves `state` in `dir`, atomically and durably (see the module invariants).
/// On error the previous file, if any, is left as it was.
pub fn save(dir: &Path, state: &SavedState) -> Result<(), PersistError> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(TMP_NAME);
    let body = toml::to_string(state).map_err(|e| PersistError::Encode {
        path: path.clone(),
        message: one_line(&e.to_string()),
    })?;
    if let Err(source) = write_synced(&tmp, &body) {
        // Best effort: do not leave a partial file behind.
        let _ = fs::remove_file(&tmp);
        return Err(PersistError::Write { path: tmp, source });
    }
    if let Err(source) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(PersistError::Rename {
            from: tmp,
            to: path,
            source,
        });
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| PersistError::SyncDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Replaces the file at `path` with `text`, atomically and durably: a
/// temporary file beside it is written, fsynced and renamed over it, and the
/// directory is fsynced. On error the old file is left as it was.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    File::open(dir).and_then(|d| d.sync_all())
}

/// Creates (or truncates) `path`, writes the header and `body`, and fsyncs it.
fn write_synced(path: &Path, body: &str) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(HEADER.as_bytes())?;
    file.write_all(body.as_bytes())?;
    file.sync_all()
}

fn one_line(message: &str) -> String {
    message.trim().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SavedState {
        SavedState {
            myid: "b0e4e370a08bc9756ddd1481ee0b63907a5dcc76".into(),
            current_epoch: 3,
            master_name: "mymaster".into(),
            master: "127.0.0.1:6379".into(),
            config_epoch: 2,
            replicas: vec!["127.0.0.1:6380".into(), "[::1]:6381".into()],
            peers: vec![
                SavedPeer {
                    addr: "127.0.0.1:26380".into(),
                    run_id: "7abd20de715ec32e099ad231bbb65a04bd10533c".into(),
                },
                SavedPeer {
                    addr: "[::1]:26381".into(),
                    run_id: "9a67f7adce963a872aa306ea3fe3160bc33d3082".into(),
                },
            ],
            leader: Some("7abd20de715ec32e099ad231bbb65a04bd10533c".into()),
            leader_epoch: 3,
            monitored: Vec::new(),
            overrides: Vec::new(),
            sentinel_config: Vec::new(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state()));

        let fresh = SavedState {
            replicas: vec![],
            peers: vec![],
            leader: None,
            leader_epoch: 0,
            monitored: Vec::new(),
            overrides: Vec::new(),
            sentinel_config: Vec::new(),
            ..state()
        };
        save(dir.path(), &fresh).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(fresh));
    }

    #[test]
    fn the_file_is_readable_toml() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state()).unwrap();
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.starts_with("# sentinel-proxy state"), "{text}");
        assert!(text.contains("leader_epoch = 3"), "{text}");
        assert!(text.contains("master = \"127.0.0.1:6379\""), "{text}");
    }

    #[test]
    fn a_missing_file_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        assert_eq!(load(&dir.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn a_corrupt_file_is_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        save(dir.path(), &state()).unwrap();
        let full = fs::read_to_string(&path).unwrap();
        // Cut mid-way, as a write without the tmp-and-rename dance could leave it.
        let truncated = full[..full.len() / 2].to_owned();
        assert!(truncated.contains("myid"), "{truncated}");
        for text in [
            "not toml at all [[[",
            truncated.as_str(),
            "myid = \"x\"\n",
            "",
        ] {
            fs::write(&path, text).unwrap();
            match load(dir.path()) {
                Err(PersistError::Parse { path: p, message }) => {
                    assert_eq!(p, path);
                    assert!(!message.contains('\n'), "{message}");
                }
                other => panic!("{text:?}: expected a parse error, got {other:?}"),
            }
        }
        let shown = load(dir.path()).unwrap_err().to_string();
        assert!(shown.starts_with("state file "), "{shown}");
        assert!(shown.contains(FILE_NAME), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }

    /// A run id that is not 40 hex characters (hand-edited, or corrupt) is
    /// refused on load, naming the field: a non-ASCII one once panicked when
    /// the core cut its first 8 bytes for a connection name.
    #[test]
    fn a_malformed_run_id_is_a_parse_error_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let good = state();
        let mut bad_myid = good.clone();
        bad_myid.myid = "é".repeat(20);
        let mut bad_peer = good.clone();
        bad_peer.peers = vec![SavedPeer {
            addr: "127.0.0.1:26379".into(),
            run_id: "short".into(),
        }];
        for (state, field) in [(bad_myid, "myid"), (bad_peer, "peers.run_id")] {
            save(dir.path(), &state).unwrap();
            match load(dir.path()) {
                Err(PersistError::Parse { message, .. }) => {
                    assert!(message.starts_with(field), "{message}");
                    assert!(message.contains("40 hexadecimal"), "{message}");
                }
                other => panic!("{field}: expected a parse error, got {other:?}"),
            }
        }
        save(dir.path(), &good).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(good));
    }

    #[test]
    fn unknown_keys_are_a_parse_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state()).unwrap();
        let path = dir.path().join(FILE_NAME);
        let text = format!("{}surprise = 1\n", fs::read_to_string(&path).unwrap());
        let line = text.lines().count();
        fs::write(&path, text).unwrap();
        match load(dir.path()) {
            Err(PersistError::Parse { message, .. }) => {
                assert!(message.contains("surprise"), "{message}");
                assert!(message.starts_with(&format!("line {line}: ")), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn a_leftover_tmp_is_ignored_by_load_and_overwritten_by_save() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(format!("{FILE_NAME}.tmp"));
        fs::write(&tmp, "half a state from a cra").unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);

        save(dir.path(), &state()).unwrap();
        fs::write(&tmp, "half a state from a cra").unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state()));

        let newer = SavedState {
            current_epoch: 4,
            ..state()
        };
        save(dir.path(), &newer).unwrap();
        assert!(!tmp.exists());
        assert_eq!(load(dir.path()).unwrap(), Some(newer));
    }

    #[test]
    fn save_creates_no_other_files() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &state()).unwrap();
        save(dir.path(), &state()).unwrap();
        assert_eq!(names(dir.path()), vec![FILE_NAME.to_owned()]);
    }

    #[test]
    fn save_into_a_missing_directory_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        match save(&missing, &state()) {
            Err(PersistError::Write { path, .. }) => {
                assert_eq!(path, missing.join(format!("{FILE_NAME}.tmp")));
            }
            other => panic!("expected a write error, got {other:?}"),
        }
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_directory_in_the_way_is_a_read_or_rename_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        assert!(matches!(load(dir.path()), Err(PersistError::Read { .. })));
        assert!(matches!(
            save(dir.path(), &state()),
            Err(PersistError::Rename { .. })
        ));
        // The failed save cleaned up after itself.
        assert_eq!(names(dir.path()), vec![FILE_NAME.to_owned()]);
    }

    #[test]
    fn epochs_round_trip_across_the_whole_u64_range() {
        // TOML integers are i64, but the toml crate reads and writes u64 beyond
        // that, so a huge epoch is kept rather than refused.
        let dir = tempfile::tempdir().unwrap();
        let huge = SavedState {
            current_epoch: u64::MAX,
            config_epoch: u64::MAX - 1,
            leader_epoch: u64::MAX,
            monitored: Vec::new(),
            overrides: Vec::new(),
            sentinel_config: Vec::new(),
            ..state()
        };
        save(dir.path(), &huge).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(huge));
    }
}
