//! `[secrets]`: where the values of a task's `secret_env` come from.
//!
//! ```toml
//! [secrets]
//! files = ["/etc/troupe/secrets.env"]   # KEY=VALUE lines; mode 0600 (or stricter)
//! ```
//!
//! A workflow names secrets (`secret_env = ["API_KEY"]`); only those names are part of the
//! task's spec, so only they are journaled. The node that runs an attempt looks each name up
//! when the process starts: first in its `[secrets]` files (a later file wins over an
//! earlier one), then in its own environment. The values are held in memory only
//! ([`Secrets`]), never written by troupe, and their `Debug` form shows names only.
//!
//! A secrets file holds `NAME=VALUE` lines: `NAME` a portable variable name
//! (`[A-Za-z_][A-Za-z0-9_]*`), `VALUE` everything after the first `=` up to the end of the
//! line, verbatim (no quotes, no escapes, no `${...}`); blank lines and lines starting with
//! `#` are skipped; a name given twice keeps the later value. A file that others may read
//! (any group or other permission bit: not `0600`/`0400`) is refused, as is a line that is
//! not `NAME=VALUE`; errors name the file and line, never a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::parse::Spans;
use super::ConfigError;
use crate::model::valid_env_name;

/// The `[secrets]` table as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecrets {
    /// Secret files, relative to the config file's folder.
    files: Spanned<Vec<Spanned<String>>>,
}

/// The secret values a node hands to its attempts' processes: what its `[secrets]` files
/// hold, and its own environment for the rest. `Debug` prints the files and the names,
/// never a value.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The files the values were read from, in order (what `--print-config` shows).
    files: Vec<PathBuf>,
    /// Name → value, from the files (later files override earlier ones).
    values: BTreeMap<String, String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("files", &self.files)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secrets {
    /// Reads secret files in order (see the [module docs](self) for their format).
    ///
    /// # Errors
    /// A file that cannot be read, that group or others have any permission on (`FILE has
    /// mode 644: ...; chmod 600 it`), or with a line that is not `NAME=VALUE`
    /// (`FILE:LINE: ...`). Messages never hold a value.
    pub fn load(files: &[PathBuf]) -> Result<Secrets, String> {
        use std::os::unix::fs::PermissionsExt;
        let mut values = BTreeMap::new();
        for path in files {
            let name = path.display();
            let meta = std::fs::metadata(path).map_err(|e| format!("secrets file {name}: {e}"))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "secrets file {name} has mode {mode:o}: group or others may read it; \
                     chmod 600 it"
                ));
            }
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("secrets file {name}: {e}"))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let at = i + 1;
                let Some((key, value)) = line.split_once('=') else {
                    return Err(format!("secrets file {name}:{at}: not a NAME=VALUE line"));
                };
                let key = key.trim();
                if !valid_env_name(key) {
                    return Err(format!(
                        "secrets file {name}:{at}: the name before `=` is not a valid \
                         environment variable name (letters, digits and `_`, not starting \
                         with a digit)"
                    ));
                }
                values.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(Secrets {
            files: files.to_vec(),
            values,
        })
    }

    /// The files the values come from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The value of secret `name`: from the files, else from this process's environment
    /// (`None` if neither has it, or the environment's value is not UTF-8).
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }

    /// The names among `names` that [`get`](Self::get) has no value for.
    pub fn missing<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
        names
            .into_iter()
            .filter(|n| !self.values.contains_key(n.as_str()) && std::env::var_os(n).is_none())
            .map(String::as_str)
            .collect()
    }
}

/// Checks `[secrets]` and reads its files; relative paths are taken from `base` (the config
/// file's folder).
pub(super) fn check(p: &Spans<'_>, raw: &RawSecrets, base: &Path) -> Result<Secrets, ConfigError> {
    let mut files = Vec::new();
    for f in raw.files.get_ref() {
        if f.get_ref().trim().is_empty() {
            return Err(p.at(Some(f.span()), "[secrets] files: an entry is empty"));
        }
        files.push(base.join(f.get_ref()));
    }
    Secrets::load(&files).map_err(|e| p.at(Some(raw.files.span()), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn files_are_read_in_order_and_debug_shows_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(dir.path(), "a.env", "# c\n\nA=one=two\nB= spaced \n", 0o600);
        let b = file(dir.path(), "b.env", "B=later\r\n", 0o400);
        let s = Secrets::load(&[a, b]).unwrap();
        assert_eq!(s.get("A").as_deref(), Some("one=two"));
        assert_eq!(s.get("B").as_deref(), Some("later"));
        assert_eq!(s.get("TROUPE_TEST_SURELY_UNSET"), None);
        let names = ["A".to_owned(), "TROUPE_TEST_SURELY_UNSET".to_owned()];
        assert_eq!(s.missing(&names), ["TROUPE_TEST_SURELY_UNSET"]);
        let debug = format!("{s:?}");
        assert!(
            debug.contains("\"A\"") && !debug.contains("one=two"),
            "{debug}"
        );
    }

    #[test]
    fn a_readable_file_or_a_bad_line_is_refused_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let open = file(dir.path(), "open.env", "K=hunter2\n", 0o640);
        let e = Secrets::load(&[open]).unwrap_err();
        assert!(e.contains("open.env has mode 640"), "{e}");
        let bad = file(dir.path(), "bad.env", "K=v\nhunter2\n", 0o600);
        let e = Secrets::load(&[bad]).unwrap_err();
        assert!(e.ends_with("bad.env:2: not a NAME=VALUE line"), "{e}");
        let bad = file(dir.path(), "name.env", "1K=hunter2\n", 0o600);
        let e = Secrets::load(&[bad]).unwrap_err();
        assert!(e.contains("name.env:1:") && !e.contains("hunter2"), "{e}");
    }
}
