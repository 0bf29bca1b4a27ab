//! `troupe new TEMPLATE [PATH] [--force]`: writes a commented starter workflow that validates
//! as is; `troupe new --list [--json]`: the templates, one line each.
//!
//! The templates are files of this folder's `../templates/` (`pipeline.toml`, ...), embedded
//! with `include_str!`, so they read as workflows in the sources and a test can hold each to
//! `troupe validate` (D70). A file is written through a temporary file in the same folder and
//! a rename (or a hard link, which refuses an existing name), so a failed write never leaves
//! half a workflow behind, and an existing file is replaced only with `--force`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::common::{Failed, EXIT_INTERNAL, EXIT_INVALID};
use crate::render::json::print_json;

/// `troupe new`'s arguments.
#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// The template: pipeline, fanout, saga, approval, agents, swarm (`--list` describes
    /// each).
    #[arg(required_unless_present = "list")]
    template: Option<String>,
    /// Where to write: a file, or an existing directory (then DIR/TEMPLATE.toml).
    /// Default: ./TEMPLATE.toml.
    path: Option<PathBuf>,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
    /// List the templates with a one-line description each.
    #[arg(long, conflicts_with_all = ["template", "path", "force"])]
    list: bool,
    /// With --list: one JSON array of {"name", "description"}.
    #[arg(long, requires = "list")]
    json: bool,
}

/// One starter workflow.
struct Template {
    /// What `troupe new` takes, and the default file name's stem.
    name: &'static str,
    /// One line for `--list`.
    description: &'static str,
    /// The workflow file, comments and all.
    text: &'static str,
    /// What to do after `troupe validate`, printed once the file is written: command lines,
    /// `FILE` standing for the path.
    next: &'static [&'static str],
}

/// Every template, in the order `--list` prints them.
const TEMPLATES: &[Template] = &[
    Template {
        name: "pipeline",
        description: "steps run one after another, each handing its JSON output to the next",
        text: include_str!("../templates/pipeline.toml"),
        next: &["troupe run FILE"],
    },
    Template {
        name: "fanout",
        description: "one task lists items, a mapped task runs once per item (for_each), a \
                      last one combines",
        text: include_str!("../templates/fanout.toml"),
        next: &["troupe run FILE"],
    },
    Template {
        name: "saga",
        description: "steps with compensations, undone newest first if a later step fails",
        text: include_str!("../templates/saga.toml"),
        next: &["troupe run FILE"],
    },
    Template {
        name: "approval",
        description: "a task that waits for `troupe approve` before it starts \
                      (requires_approval)",
        text: include_str!("../templates/approval.toml"),
        next: &[
            "troupe node start &",
            "troupe run FILE --detach",
            "troupe approvals",
            "troupe approve RUN/deploy --as NAME",
        ],
    },
    Template {
        name: "agents",
        description: "a lead task delegates parts to child runs (troupe spawn) and combines \
                      their results (troupe wait)",
        text: include_str!("../templates/agents.toml"),
        next: &["troupe run FILE", "troupe tree RUN"],
    },
    Template {
        name: "swarm",
        description: "replicas of one task run in parallel; a quorum of equal outputs (or a \
                      vote) decides",
        text: include_str!("../templates/swarm.toml"),
        next: &["troupe run FILE"],
    },
];

/// A refusal: exit 2 and its message.
fn refused(message: String) -> Failed {
    Failed {
        code: EXIT_INVALID,
        message,
    }
}

/// `troupe new ...`: exit 0 once written (or listed); 2 for an unknown template, an existing
/// file without `--force`, a missing or unwritable folder; 3 for another I/O error.
pub(crate) fn new(args: NewArgs) -> ExitCode {
    if args.list {
        list(args.json);
        return ExitCode::SUCCESS;
    }
    let name = args.template.as_deref().unwrap_or_default();
    match write(name, args.path.as_deref(), args.force) {
        Ok((template, path)) => {
            let shown = show(shell_word(&path.to_string_lossy()));
            println!(
                "wrote {} (template {}: {})",
                show(&path),
                template.name,
                template.description
            );
            println!("next:");
            println!("  troupe validate {shown}");
            for line in template.next {
                println!("  {}", line.replace("FILE", &shown));
            }
            ExitCode::SUCCESS
        }
        Err(f) => f.exit("new"),
    }
}

/// `--list`: `NAME  DESCRIPTION` lines, or one JSON array.
fn list(json: bool) {
    if json {
        print_json(&json!(TEMPLATES
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description}))
            .collect::<Vec<_>>()));
        return;
    }
    let width = TEMPLATES.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in TEMPLATES {
        println!("{:width$}  {}", t.name, t.description);
    }
}

/// Writes template `name` to `path` (see [`NewArgs::path`]); gives the template and the path
/// written.
fn write(
    name: &str,
    path: Option<&Path>,
    force: bool,
) -> Result<(&'static Template, PathBuf), Failed> {
    let template = TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| unknown(name))?;
    let file_name = format!("{}.toml", template.name);
    let path = match path {
        None => PathBuf::from(&file_name),
        Some(p) if p.is_dir() => p.join(&file_name),
        // `DIR/` names a directory, which must exist.
        Some(p) if p.as_os_str().as_encoded_bytes().ends_with(b"/") => {
            return Err(refused(format!(
                "the directory {} does not exist (create it first)",
                show(p)
            )))
        }
        Some(p) => p.to_owned(),
    };
    let folder = match path.parent() {
        Some(f) if !f.as_os_str().is_empty() => f.to_owned(),
        _ => PathBuf::from("."),
    };
    match fs::metadata(&folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refused(format!(
                "{} is not a directory, so {} cannot be written",
                show(&folder),
                show(&path)
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(refused(format!(
                "the directory {} does not exist (create it first), so {} cannot be written",
                show(&folder),
                show(&path)
            )))
        }
        Err(e) => return Err(io_failed(&folder, e)),
    }
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            return Err(refused(format!(
                "{} is a directory; name a file to write",
                show(&path)
            )))
        }
        Ok(_) if !force => return Err(exists(&path)),
        _ => {}
    }
    write_atomically(&folder, &path, template.text.as_bytes(), force)?;
    Ok((template, path))
}

/// `path` for a message: lossy UTF-8, control and bidi characters escaped.
fn show(path: impl AsRef<Path>) -> String {
    troupe::model::quote::printable(&path.as_ref().to_string_lossy()).into_owned()
}

/// `path` exists and `--force` was not given.
fn exists(path: &Path) -> Failed {
    refused(format!(
        "{} already exists; pass --force to replace it",
        show(path)
    ))
}

/// An unknown template: the known ones, and the closest as a suggestion.
fn unknown(name: &str) -> Failed {
    let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
    let closest = TEMPLATES
        .iter()
        .map(|t| (edit_distance(&name.to_lowercase(), t.name), t.name))
        .min()
        .filter(|(d, t)| *d <= t.len() / 2)
        .map(|(_, t)| format!("did you mean `{t}`? "))
        .unwrap_or_default();
    refused(format!(
        "unknown template `{}`; {closest}the templates are: {} (`troupe new --list` describes \
         them)",
        troupe::model::quote::printable(name),
        names.join(", ")
    ))
}

/// Levenshtein distance between `a` and `b`, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Writes `bytes` to `path` whole or not at all: into a new temporary file of `folder`
/// (synced), then renamed over `path` with `force`, else hard-linked to it, which fails if
/// `path` appeared meanwhile (a file system without hard links falls back to a check and a
/// rename). The temporary file is removed in every case.
fn write_atomically(folder: &Path, path: &Path, bytes: &[u8], force: bool) -> Result<(), Failed> {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = folder.join(format!(".{stem}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f: File = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    let placed = written.map_err(|e| io_failed(path, e)).and_then(|()| {
        if force {
            return fs::rename(&tmp, path).map_err(|e| io_failed(path, e));
        }
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists(path)),
            Err(_) if fs::symlink_metadata(path).is_ok() => Err(exists(path)),
            Err(_) => fs::rename(&tmp, path).map_err(|e| io_failed(path, e)),
        }
    });
    let _ = fs::remove_file(&tmp);
    placed?;
    // The new name is durable once its directory is synced; a failure here loses nothing
    // written, so it is not reported.
    if let Ok(d) = File::open(folder) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An I/O error on `path`: exit 2 when the user can fix it by choosing another path
/// (permission, read-only file system), else 3.
fn io_failed(path: &Path, e: io::Error) -> Failed {
    let code = match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => EXIT_INVALID,
        _ => EXIT_INTERNAL,
    };
    Failed {
        code,
        message: format!("cannot write {}: {e}", show(path)),
    }
}

/// `word` as one shell word: as is when it holds only characters no shell treats specially,
/// else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./+,:@%=".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
