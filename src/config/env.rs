//! The `TROUPE_*` environment overrides, applied over what the file set.

use super::file::NodeFile;
use super::values::{check_workers, parse_http_addr};
use super::ConfigError;

/// Environment variables that override the file, and the setting each one sets.
pub const ENV_OVERRIDES: [(&str, &str); 7] = [
    ("TROUPE_HTTP_ADDR", "http_addr"),
    ("TROUPE_WORKERS", "workers"),
    ("TROUPE_GRACE", "grace"),
    ("TROUPE_DURABILITY", "durability"),
    ("TROUPE_LOG_CAP", "log_cap"),
    ("TROUPE_SNAPSHOT_EVERY", "snapshot_every"),
    ("TROUPE_APPROVAL_TIMEOUT", "approval.timeout"),
];

/// Applies the `TROUPE_*` overrides found by `env` (see [`ENV_OVERRIDES`]) over `file`.
pub fn apply_env(
    mut file: NodeFile,
    env: impl Fn(&str) -> Option<String>,
) -> Result<NodeFile, ConfigError> {
    let bad = |var: &str, v: &str, why: String| ConfigError(format!("{var}={v}: {why}"));
    for (var, _) in ENV_OVERRIDES {
        let Some(v) = env(var) else { continue };
        match var {
            "TROUPE_HTTP_ADDR" => {
                file.http_addr = Some(parse_http_addr(&v).map_err(|e| bad(var, &v, e))?);
            }
            "TROUPE_WORKERS" => {
                let n: i64 = v
                    .parse()
                    .map_err(|e| bad(var, &v, format!("not a worker count ({e})")))?;
                file.workers = Some(check_workers(n).map_err(|e| bad(var, &v, e))?);
            }
            "TROUPE_GRACE" => {
                file.grace = Some(
                    humantime::parse_duration(&v)
                        .map_err(|e| bad(var, &v, format!("not a duration ({e})")))?,
                )
            }
            "TROUPE_DURABILITY" => {
                file.durability = Some(v.parse().map_err(|e: String| bad(var, &v, e))?)
            }
            "TROUPE_LOG_CAP" => {
                file.log_cap = Some(
                    v.parse()
                        .map_err(|e| bad(var, &v, format!("not a byte count ({e})")))?,
                )
            }
            "TROUPE_SNAPSHOT_EVERY" => {
                file.snapshot_every = Some(
                    v.parse()
                        .map_err(|e| bad(var, &v, format!("not an event count ({e})")))?,
                )
            }
            "TROUPE_APPROVAL_TIMEOUT" => {
                let d = humantime::parse_duration(&v)
                    .map_err(|e| bad(var, &v, format!("not a duration ({e})")))?;
                if d.is_zero() {
                    return Err(bad(var, &v, "must be longer than 0s".into()));
                }
                file.approval_timeout = Some(d);
            }
            _ => unreachable!("listed above"),
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::parse;
    use crate::config::test_env as env;
    use crate::storage::Durability;

    #[test]
    fn node_settings_and_env_overrides() {
        let f = parse(
            "workers = 4\ngrace = \"2s\"\ndurability = \"buffered\"\nlog_cap = 1024\nsnapshot_every = 0\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.workers, Some(4));
        assert_eq!(f.durability, Some(Durability::Buffered));
        let f = apply_env(f, env(&[("TROUPE_WORKERS", "6"), ("TROUPE_GRACE", "1s")])).unwrap();
        assert_eq!(f.workers, Some(6));
        assert_eq!(f.grace, Some(Duration::from_secs(1)));
        for (var, value, want) in [
            (
                "TROUPE_WORKERS",
                "0",
                "TROUPE_WORKERS=0: workers must be between 1 and 10000 (got 0)",
            ),
            (
                "TROUPE_WORKERS",
                "many",
                "TROUPE_WORKERS=many: not a worker count",
            ),
            (
                "TROUPE_DURABILITY",
                "fast",
                "TROUPE_DURABILITY=fast: unknown durability",
            ),
            (
                "TROUPE_APPROVAL_TIMEOUT",
                "0s",
                "TROUPE_APPROVAL_TIMEOUT=0s: must be longer",
            ),
        ] {
            let e = apply_env(NodeFile::default(), env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e}");
        }
    }
}
