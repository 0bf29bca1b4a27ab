//! The effective settings rendered as a `troupe.toml` (`troupe node start --print-config`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::storage::Durability;

/// The effective settings as a `troupe.toml` (what `troupe node start --print-config`
/// prints).
pub fn render(cfg: &super::NodeConfig) -> String {
    #[derive(serde::Serialize)]
    struct Rule<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pool: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    }
    #[derive(serde::Serialize)]
    struct Approval<'a> {
        timeout: String,
        rule: Vec<Rule<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Health {
        backlog: u64,
        error_rate: f64,
        stalled_after: String,
        min_free_disk: u64,
        restart_window: String,
    }
    #[derive(serde::Serialize)]
    struct Retention {
        metrics: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        logs: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        runs: Option<String>,
    }
    #[derive(serde::Serialize)]
    struct Hook<'a> {
        url: &'a str,
        events: Vec<&'static str>,
        timeout: String,
        max_attempts: u32,
    }
    #[derive(serde::Serialize)]
    struct Cluster {
        listen: String,
        cookie_file: String,
        join_tokens_file: String,
        heartbeat: String,
        run_local: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_cert: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_ca: Option<String>,
    }
    /// `[secrets]`: the files only, never a value.
    #[derive(serde::Serialize)]
    struct SecretFiles {
        files: Vec<String>,
    }
    #[derive(serde::Serialize)]
    struct Breaker<'a> {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pool: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        failure_rate: Option<f64>,
        window: u32,
        min_attempts: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        consecutive_failures: Option<u32>,
        open_for: String,
        half_open_probes: u32,
    }
    #[derive(serde::Serialize)]
    struct Policy<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_attempts: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        initial_interval: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        backoff_coefficient: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_interval: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        jitter: Option<f64>,
        non_retryable_exit_codes: &'a [i32],
        non_retryable_signals: &'a [i32],
    }
    #[derive(serde::Serialize)]
    struct HookMatch<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        workflow: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pool: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct CommandHook<'a> {
        /// Left out for an unnamed hook (its default `hooks[INDEX]` is not a valid name).
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        on: &'static str,
        #[serde(rename = "match")]
        matcher: HookMatch<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        shell: Option<&'a str>,
        timeout: String,
        max_attempts: u32,
        veto: bool,
    }
    #[derive(serde::Serialize)]
    struct Scheduling<'a> {
        scoring: bool,
        priority: f64,
        deadline: f64,
        age: f64,
        default_deadline: String,
        label_boosts: &'a BTreeMap<String, f64>,
    }
    #[derive(serde::Serialize)]
    struct Http {
        tokens_file: String,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        workers: u32,
        grace: String,
        durability: &'static str,
        log_cap: u64,
        snapshot_every: u64,
        http_addr: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        inbox: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        http: Option<Http>,
        pools: &'a BTreeMap<String, u32>,
        health: Health,
        retention: Retention,
        approval: Approval<'a>,
        webhooks: Vec<Hook<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster: Option<Cluster>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secrets: Option<SecretFiles>,
        breakers: Vec<Breaker<'a>>,
        retry_policies: BTreeMap<&'a str, Policy<'a>>,
        hooks: Vec<CommandHook<'a>>,
        scheduling: Scheduling<'a>,
    }
    let human = |d: Duration| humantime::format_duration(d).to_string();
    let out = Out {
        workers: cfg.workers,
        grace: human(cfg.grace),
        durability: match cfg.durability {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        },
        log_cap: cfg.log_cap,
        snapshot_every: cfg.snapshot_every,
        http_addr: cfg
            .http_addr
            .map_or_else(|| "off".to_string(), |a| a.to_string()),
        inbox: cfg.inbox.as_ref().map(|p| p.display().to_string()),
        http: cfg.http.tokens_file.as_ref().map(|p| Http {
            tokens_file: p.display().to_string(),
        }),
        pools: &cfg.pools,
        health: Health {
            backlog: cfg.health.backlog,
            error_rate: cfg.health.error_rate,
            stalled_after: human(cfg.health.stalled_after),
            min_free_disk: cfg.health.min_free_disk,
            restart_window: human(cfg.health.restart_window),
        },
        retention: Retention {
            metrics: human(cfg.retention.metrics),
            logs: cfg.retention.logs.map(human),
            runs: cfg.retention.runs.map(human),
        },
        webhooks: cfg
            .webhooks
            .iter()
            .map(|w| Hook {
                url: w.url.as_str(),
                events: w.events.iter().map(|e| e.as_str()).collect(),
                timeout: human(w.timeout),
                max_attempts: w.max_attempts,
            })
            .collect(),
        approval: Approval {
            timeout: human(cfg.approval_timeout),
            rule: cfg
                .approval_rules
                .iter()
                .map(|r| Rule {
                    pool: r.pool.as_deref(),
                    label: r.label.as_deref(),
                    command: r.command.as_ref().map(|g| g.as_str()),
                    timeout: r.timeout.map(human),
                })
                .collect(),
        },
        cluster: cfg.cluster.as_ref().map(|c| {
            let path = |p: &std::path::Path| p.display().to_string();
            Cluster {
                listen: c.listen.to_string(),
                cookie_file: path(&c.cookie_file),
                join_tokens_file: path(&c.join_tokens_file),
                heartbeat: human(c.heartbeat),
                run_local: c.run_local,
                tls_cert: c.tls.as_ref().map(|t| path(&t.cert)),
                tls_key: c.tls.as_ref().map(|t| path(&t.key)),
                tls_ca: c.tls.as_ref().map(|t| path(&t.ca)),
            }
        }),
        secrets: (!cfg.secrets.files().is_empty()).then(|| SecretFiles {
            files: cfg
                .secrets
                .files()
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        }),
        breakers: cfg
            .breakers
            .iter()
            .map(|b| Breaker {
                name: &b.name,
                pool: b.scope.pool.as_deref(),
                label: b.scope.label.as_deref(),
                command: b.scope.command.as_deref(),
                failure_rate: b.failure_rate,
                window: b.window,
                min_attempts: b.min_attempts,
                consecutive_failures: b.consecutive_failures,
                open_for: human(b.open_for),
                half_open_probes: b.half_open_probes,
            })
            .collect(),
        retry_policies: cfg
            .retry_policies
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    Policy {
                        label: p.label.as_deref(),
                        max_attempts: p.retry.max_attempts,
                        initial_interval: p.retry.initial_interval.map(human),
                        backoff_coefficient: p.retry.backoff_coefficient,
                        max_interval: p.retry.max_interval.map(human),
                        jitter: p.retry.jitter,
                        non_retryable_exit_codes: &p.choice.non_retryable_exit_codes,
                        non_retryable_signals: &p.choice.non_retryable_signals,
                    },
                )
            })
            .collect(),
        hooks: cfg
            .hooks
            .iter()
            .enumerate()
            .map(|(i, h)| CommandHook {
                name: (h.name != format!("hooks[{i}]")).then_some(h.name.as_str()),
                on: h.on.as_str(),
                matcher: HookMatch {
                    workflow: h.scope.workflow.as_deref(),
                    label: h.scope.label.as_deref(),
                    pool: h.scope.pool.as_deref(),
                },
                command: match &h.command {
                    crate::model::Command::Argv(argv) => Some(argv.as_slice()),
                    crate::model::Command::Shell(_) => None,
                },
                shell: match &h.command {
                    crate::model::Command::Shell(s) => Some(s.as_str()),
                    crate::model::Command::Argv(_) => None,
                },
                timeout: human(h.timeout),
                max_attempts: h.max_attempts,
                veto: h.veto,
            })
            .collect(),
        scheduling: Scheduling {
            scoring: cfg.scheduling.scoring,
            priority: cfg.scheduling.priority,
            deadline: cfg.scheduling.deadline,
            age: cfg.scheduling.age,
            default_deadline: human(cfg.scheduling.default_deadline),
            label_boosts: &cfg.scheduling.label_boosts,
        },
    };
    toml::to_string(&out).expect("plain values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn rendered_config_reads_back() {
        let mut cfg = crate::config::NodeConfig::new("/tmp/x");
        cfg.workers = 3;
        cfg.approval_rules = parse("[[approval.rule]]\npool = \"p\"\ncommand = \"rm *\"\n", "t")
            .unwrap()
            .approval_rules;
        let text = render(&cfg);
        let f = parse(&text, "rendered").unwrap();
        assert_eq!(f.workers, Some(3));
        assert_eq!(f.approval_rules.len(), 1);
        assert_eq!(f.approval_timeout, Some(cfg.approval_timeout));
        assert!(f.cluster.is_none());
    }

    #[test]
    fn rendered_breakers_and_retry_policies_read_back() {
        let text = "[pools]\napi = 2\n[[breakers]]\nname = \"b\"\npool = \"api\"\nconsecutive_failures = 3\nopen_for = \"90s\"\n\
                    [retry_policies.net]\nlabel = \"net\"\nmax_attempts = 4\nnon_retryable_exit_codes = [2]\n";
        let f = parse(text, "t").unwrap();
        let mut cfg = crate::config::NodeConfig::new("/tmp/x");
        f.apply(&mut cfg);
        let back = parse(&render(&cfg), "rendered").unwrap();
        assert_eq!(back.breakers, cfg.breakers);
        assert_eq!(back.retry_policies, cfg.retry_policies);
        let f = parse(
            "[[hooks]]\non = \"task_ready\"\nveto = true\nshell = \"exit 0\"\nmatch = { label = \"x\" }\n\
             [[hooks]]\nname = \"n\"\non = \"node_started\"\ncommand = [\"true\"]\n",
            "t",
        )
        .unwrap();
        let mut cfg = crate::config::NodeConfig::new("/tmp/x");
        f.apply(&mut cfg);
        let back = parse(&render(&cfg), "rendered").unwrap();
        assert_eq!(back.hooks, cfg.hooks);
    }

    #[test]
    fn rendered_scheduling_reads_back() {
        let cfg = crate::config::NodeConfig::new("/tmp/x");
        let back = parse(&render(&cfg), "rendered").unwrap();
        assert_eq!(
            back.scheduling.as_ref(),
            Some(&cfg.scheduling),
            "the defaults"
        );
        let f = parse(
            "[scheduling]\nscoring = false\npriority = 7.5\ndeadline = 0\nage = 2\ndefault_deadline = \"90m\"\n\
             [scheduling.label_boosts]\nvip = 500\n\"a b\" = 1.25\n",
            "t",
        )
        .unwrap();
        let mut cfg = crate::config::NodeConfig::new("/tmp/x");
        f.apply(&mut cfg);
        assert_eq!(cfg.scheduling.label_boosts.len(), 2);
        let text = render(&cfg);
        assert!(text.contains("[scheduling]"), "{text}");
        let back = parse(&text, "rendered").unwrap();
        assert_eq!(back.scheduling, Some(cfg.scheduling));
    }

    #[test]
    fn a_rendered_cluster_reads_back() {
        let f = parse(
            "[cluster]\nlisten = \"127.0.0.1:9480\"\ncookie_file = \"/c\"\njoin_tokens_file = \"/t\"\nheartbeat = \"750ms\"\nrun_local = false\n",
            "t",
        )
        .unwrap();
        let mut cfg = crate::config::NodeConfig::new("/tmp/x");
        f.apply(&mut cfg);
        let back = parse(&render(&cfg), "rendered").unwrap();
        assert_eq!(back.cluster, cfg.cluster);
        assert_eq!(
            back.cluster.unwrap().heartbeat,
            std::time::Duration::from_millis(750)
        );
    }
}
