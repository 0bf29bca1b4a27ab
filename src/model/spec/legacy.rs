//! The spec layouts of older event schemas, decoded only from old journals and snapshots
//! and upgraded to [`super::WorkflowSpec`] with the newer fields unset.

use super::*;

/// The spec as event schema 1 stored it (before `labels` and `compensate_retry`); decoded
/// only from old journals and snapshots, then upgraded with empty new fields.
pub(crate) mod v1 {
    use super::*;

    /// Schema-1 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: TaskDefaults,
        tasks: Vec<TaskSpec>,
    }

    #[derive(Deserialize)]
    struct TaskDefaults {
        timeout: Option<Duration>,
        retry: RetrySpec,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
        pool: Option<String>,
        priority: Option<i32>,
        requires_approval: Option<bool>,
        approval_timeout: Option<Duration>,
    }

    #[derive(Deserialize)]
    struct TaskSpec {
        id: TaskId,
        command: Command,
        cwd: Option<String>,
        depends_on: Vec<TaskId>,
        priority: Option<i32>,
        pool: Option<String>,
        requires_approval: Option<bool>,
        compensate: Option<Command>,
        approval_timeout: Option<Duration>,
        timeout: Option<Duration>,
        retry: Option<Box<RetrySpec>>,
        env: BTreeMap<String, String>,
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            let d = w.defaults;
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: super::TaskDefaults {
                    timeout: d.timeout,
                    retry: d.retry,
                    env: d.env,
                    cwd: d.cwd,
                    pool: d.pool,
                    priority: d.priority,
                    requires_approval: d.requires_approval,
                    approval_timeout: d.approval_timeout,
                    compensate_retry: RetrySpec::default(),
                    max_output: None,
                    max_fan_out: None,
                },
                tasks: w
                    .tasks
                    .into_iter()
                    .map(|t| super::TaskSpec {
                        id: t.id,
                        command: t.command,
                        cwd: t.cwd,
                        depends_on: t.depends_on,
                        priority: t.priority,
                        pool: t.pool,
                        requires_approval: t.requires_approval,
                        compensate: t.compensate,
                        approval_timeout: t.approval_timeout,
                        timeout: t.timeout,
                        retry: t.retry,
                        env: t.env,
                        labels: Vec::new(),
                        compensate_retry: None,
                        handoff: None,
                        node_labels: Vec::new(),
                        secret_env: Vec::new(),
                        retry_choice: None,
                        scheduling: None,
                    })
                    .collect(),
                delegation: None,
                resilience: None,
                origin: None,
            }
        }
    }
}

/// The spec as event schema 2 stored it (before `max_output`, `gate`, `for_each`); decoded
/// only from old journals and snapshots, then upgraded with the new fields unset.
pub(crate) mod v2 {
    use super::*;

    /// Schema-2 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: TaskDefaults,
        tasks: Vec<TaskSpec>,
    }

    #[derive(Deserialize)]
    struct TaskDefaults {
        timeout: Option<Duration>,
        retry: RetrySpec,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
        pool: Option<String>,
        priority: Option<i32>,
        requires_approval: Option<bool>,
        approval_timeout: Option<Duration>,
        compensate_retry: RetrySpec,
    }

    #[derive(Deserialize)]
    struct TaskSpec {
        id: TaskId,
        command: Command,
        cwd: Option<String>,
        depends_on: Vec<TaskId>,
        priority: Option<i32>,
        pool: Option<String>,
        requires_approval: Option<bool>,
        compensate: Option<Command>,
        approval_timeout: Option<Duration>,
        timeout: Option<Duration>,
        retry: Option<Box<RetrySpec>>,
        env: BTreeMap<String, String>,
        labels: Vec<String>,
        compensate_retry: Option<Box<RetrySpec>>,
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            let d = w.defaults;
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: super::TaskDefaults {
                    timeout: d.timeout,
                    retry: d.retry,
                    env: d.env,
                    cwd: d.cwd,
                    pool: d.pool,
                    priority: d.priority,
                    requires_approval: d.requires_approval,
                    approval_timeout: d.approval_timeout,
                    compensate_retry: d.compensate_retry,
                    max_output: None,
                    max_fan_out: None,
                },
                tasks: w
                    .tasks
                    .into_iter()
                    .map(|t| super::TaskSpec {
                        id: t.id,
                        command: t.command,
                        cwd: t.cwd,
                        depends_on: t.depends_on,
                        priority: t.priority,
                        pool: t.pool,
                        requires_approval: t.requires_approval,
                        compensate: t.compensate,
                        approval_timeout: t.approval_timeout,
                        timeout: t.timeout,
                        retry: t.retry,
                        env: t.env,
                        labels: t.labels,
                        compensate_retry: t.compensate_retry,
                        handoff: None,
                        node_labels: Vec::new(),
                        secret_env: Vec::new(),
                        retry_choice: None,
                        scheduling: None,
                    })
                    .collect(),
                delegation: None,
                resilience: None,
                origin: None,
            }
        }
    }
}

/// The spec as event schema 3 stored it (before `delegation`); tasks and defaults are as
/// now.
pub(crate) mod v3 {
    use super::*;

    /// Schema-3 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: super::TaskDefaults,
        tasks: Vec<super::v4::TaskSpec>,
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: w.defaults,
                tasks: w.tasks.into_iter().map(Into::into).collect(),
                delegation: None,
                resilience: None,
                origin: None,
            }
        }
    }
}

/// The spec as event schemas 3 and 4 stored their tasks (before `node_labels`); schema 4's
/// workflow is as now otherwise.
pub(crate) mod v4 {
    use super::*;

    /// Schema-4 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: super::TaskDefaults,
        tasks: Vec<TaskSpec>,
        delegation: Option<Box<super::Delegation>>,
    }

    /// Schema-3/4 [`super::TaskSpec`].
    #[derive(Deserialize)]
    pub struct TaskSpec {
        id: TaskId,
        command: Command,
        cwd: Option<String>,
        depends_on: Vec<TaskId>,
        priority: Option<i32>,
        pool: Option<String>,
        requires_approval: Option<bool>,
        compensate: Option<Command>,
        approval_timeout: Option<Duration>,
        timeout: Option<Duration>,
        retry: Option<Box<RetrySpec>>,
        env: BTreeMap<String, String>,
        labels: Vec<String>,
        compensate_retry: Option<Box<RetrySpec>>,
        handoff: Option<Box<super::Handoff>>,
    }

    impl From<TaskSpec> for super::TaskSpec {
        fn from(t: TaskSpec) -> Self {
            super::TaskSpec {
                id: t.id,
                command: t.command,
                cwd: t.cwd,
                depends_on: t.depends_on,
                priority: t.priority,
                pool: t.pool,
                requires_approval: t.requires_approval,
                compensate: t.compensate,
                approval_timeout: t.approval_timeout,
                timeout: t.timeout,
                retry: t.retry,
                env: t.env,
                labels: t.labels,
                compensate_retry: t.compensate_retry,
                handoff: t.handoff,
                node_labels: Vec::new(),
                secret_env: Vec::new(),
                retry_choice: None,
                scheduling: None,
            }
        }
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: w.defaults,
                tasks: w.tasks.into_iter().map(Into::into).collect(),
                delegation: w.delegation,
                resilience: None,
                origin: None,
            }
        }
    }
}

/// The spec as event schema 5 stored its tasks (before `secret_env`); the workflow is as now
/// otherwise.
pub(crate) mod v5 {
    use super::*;

    /// Schema-5 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: super::TaskDefaults,
        tasks: Vec<TaskSpec>,
        delegation: Option<Box<super::Delegation>>,
    }

    /// Schema-5 [`super::TaskSpec`].
    #[derive(Deserialize)]
    pub struct TaskSpec {
        id: TaskId,
        command: Command,
        cwd: Option<String>,
        depends_on: Vec<TaskId>,
        priority: Option<i32>,
        pool: Option<String>,
        requires_approval: Option<bool>,
        compensate: Option<Command>,
        approval_timeout: Option<Duration>,
        timeout: Option<Duration>,
        retry: Option<Box<RetrySpec>>,
        env: BTreeMap<String, String>,
        labels: Vec<String>,
        compensate_retry: Option<Box<RetrySpec>>,
        handoff: Option<Box<super::Handoff>>,
        node_labels: Vec<String>,
    }

    impl From<TaskSpec> for super::TaskSpec {
        fn from(t: TaskSpec) -> Self {
            super::TaskSpec {
                id: t.id,
                command: t.command,
                cwd: t.cwd,
                depends_on: t.depends_on,
                priority: t.priority,
                pool: t.pool,
                requires_approval: t.requires_approval,
                compensate: t.compensate,
                approval_timeout: t.approval_timeout,
                timeout: t.timeout,
                retry: t.retry,
                env: t.env,
                labels: t.labels,
                compensate_retry: t.compensate_retry,
                handoff: t.handoff,
                node_labels: t.node_labels,
                secret_env: Vec::new(),
                retry_choice: None,
                scheduling: None,
            }
        }
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: w.defaults,
                tasks: w.tasks.into_iter().map(Into::into).collect(),
                delegation: w.delegation,
                resilience: None,
                origin: None,
            }
        }
    }
}

/// The spec as event schema 6 stored it (before `retry_choice` and `resilience`).
pub(crate) mod v6 {
    use super::*;

    /// Schema-6 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: super::TaskDefaults,
        tasks: Vec<TaskSpec>,
        delegation: Option<Box<super::Delegation>>,
    }

    /// Schema-6 [`super::TaskSpec`].
    #[derive(Deserialize)]
    pub struct TaskSpec {
        id: TaskId,
        command: Command,
        cwd: Option<String>,
        depends_on: Vec<TaskId>,
        priority: Option<i32>,
        pool: Option<String>,
        requires_approval: Option<bool>,
        compensate: Option<Command>,
        approval_timeout: Option<Duration>,
        timeout: Option<Duration>,
        retry: Option<Box<RetrySpec>>,
        env: BTreeMap<String, String>,
        labels: Vec<String>,
        compensate_retry: Option<Box<RetrySpec>>,
        handoff: Option<Box<super::Handoff>>,
        node_labels: Vec<String>,
        secret_env: Vec<String>,
    }

    impl From<TaskSpec> for super::TaskSpec {
        fn from(t: TaskSpec) -> Self {
            super::TaskSpec {
                id: t.id,
                command: t.command,
                cwd: t.cwd,
                depends_on: t.depends_on,
                priority: t.priority,
                pool: t.pool,
                requires_approval: t.requires_approval,
                compensate: t.compensate,
                approval_timeout: t.approval_timeout,
                timeout: t.timeout,
                retry: t.retry,
                env: t.env,
                labels: t.labels,
                compensate_retry: t.compensate_retry,
                handoff: t.handoff,
                node_labels: t.node_labels,
                secret_env: t.secret_env,
                retry_choice: None,
                scheduling: None,
            }
        }
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: w.defaults,
                tasks: w.tasks.into_iter().map(Into::into).collect(),
                delegation: w.delegation,
                resilience: None,
                origin: None,
            }
        }
    }
}

/// The spec as event schema 7 stored it (before `scheduling` and `origin`).
pub(crate) mod v7 {
    use super::*;

    /// Schema-7 [`WorkflowSpec`].
    #[derive(Deserialize)]
    pub struct WorkflowSpec {
        name: String,
        max_concurrency: Option<u32>,
        pools: BTreeMap<String, u32>,
        defaults: super::TaskDefaults,
        tasks: Vec<TaskSpec>,
        delegation: Option<Box<super::Delegation>>,
        resilience: Option<Box<crate::model::resilience::Resilience>>,
    }

    /// Schema-7 [`super::TaskSpec`].
    #[derive(Deserialize)]
    pub struct TaskSpec {
        id: TaskId,
        command: Command,
        cwd: Option<String>,
        depends_on: Vec<TaskId>,
        priority: Option<i32>,
        pool: Option<String>,
        requires_approval: Option<bool>,
        compensate: Option<Command>,
        approval_timeout: Option<Duration>,
        timeout: Option<Duration>,
        retry: Option<Box<RetrySpec>>,
        env: BTreeMap<String, String>,
        labels: Vec<String>,
        compensate_retry: Option<Box<RetrySpec>>,
        handoff: Option<Box<super::Handoff>>,
        node_labels: Vec<String>,
        secret_env: Vec<String>,
        retry_choice: Option<Box<crate::model::resilience::RetryChoice>>,
    }

    impl From<TaskSpec> for super::TaskSpec {
        fn from(t: TaskSpec) -> Self {
            super::TaskSpec {
                id: t.id,
                command: t.command,
                cwd: t.cwd,
                depends_on: t.depends_on,
                priority: t.priority,
                pool: t.pool,
                requires_approval: t.requires_approval,
                compensate: t.compensate,
                approval_timeout: t.approval_timeout,
                timeout: t.timeout,
                retry: t.retry,
                env: t.env,
                labels: t.labels,
                compensate_retry: t.compensate_retry,
                handoff: t.handoff,
                node_labels: t.node_labels,
                secret_env: t.secret_env,
                retry_choice: t.retry_choice,
                scheduling: None,
            }
        }
    }

    impl From<WorkflowSpec> for super::WorkflowSpec {
        fn from(w: WorkflowSpec) -> Self {
            super::WorkflowSpec {
                name: w.name,
                max_concurrency: w.max_concurrency,
                pools: w.pools,
                defaults: w.defaults,
                tasks: w.tasks.into_iter().map(Into::into).collect(),
                delegation: w.delegation,
                resilience: w.resilience,
                origin: None,
            }
        }
    }
}
