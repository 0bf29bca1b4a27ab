//! Templates: `{{ tasks.ID.output.a.b[0] }}`, `{{ item.field }}` and `{{ index }}` in a
//! task's `command` elements and `env` values, and the `for_each` expression of a mapped task.
//!
//! # Syntax
//! A template is text with expressions in double braces; spaces inside the braces are
//! optional. An expression is a root and a path:
//! - `tasks.ID.output`: the output of task `ID` (an upstream task; a mapped task's output is
//!   the list of its instances' outputs in index order);
//! - `item`: the element of the `for_each` array this instance was made for; `index`: its
//!   position (0-based);
//! - then any number of steps: `.name` (a field of an object; names use
//!   `[A-Za-z0-9_-]`) or `[N]` (element N of an array).
//!
//! A resolved expression is pasted as text: a string as is, any other JSON value as compact
//! JSON. There is no escape for a literal `{{`; a `{{` without `}}` is an error.
//!
//! Everything here is pure: parsing happens at validation (so `validate` reports problems
//! with their position) and again at dispatch, where values come from the journal.

use std::fmt;

use serde_json::Value;

use super::ids::TaskId;

/// Where an expression starts looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `tasks.ID.output`.
    Output(TaskId),
    /// `item`: this instance's element of the `for_each` array.
    Item,
    /// `index`: this instance's position in the `for_each` array.
    Index,
    /// `input`: the run's input, given when it was spawned (`null` if none).
    Input,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name`: a field of an object.
    Field(String),
    /// `[n]`: an element of an array.
    Element(usize),
}

/// One `{{ ... }}` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// Where it starts.
    pub root: Root,
    /// The steps after the root.
    pub path: Vec<Step>,
}

impl fmt::Display for Expr {
    /// The expression as a user writes it, in braces: `{{ tasks.a.output.x[0] }}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{{ ")?;
        match &self.root {
            Root::Output(id) => write!(f, "tasks.{id}.output")?,
            Root::Item => f.write_str("item")?,
            Root::Index => f.write_str("index")?,
            Root::Input => f.write_str("input")?,
        }
        for step in &self.path {
            match step {
                Step::Field(name) => write!(f, ".{name}")?,
                Step::Element(i) => write!(f, "[{i}]")?,
            }
        }
        f.write_str(" }}")
    }
}

/// A piece of a template: literal text or an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Copied as is.
    Text(String),
    /// Replaced by its value.
    Expr(Expr),
}

/// Whether the text inside `{{ }}` is meant for troupe: it starts with `tasks.`, or is
/// `item` or `index` (alone or followed by a path). Anything else (`{{.Id}}` of `docker
/// inspect -f`, a Go or Jinja template for another program) is left as written.
fn is_ours(inner: &str) -> bool {
    inner.starts_with("tasks.")
        || word(inner, "item").is_some()
        || word(inner, "index").is_some()
        || word(inner, "input").is_some()
}

/// Parses `text` into pieces; `Ok(None)` if it holds no troupe expression (the common case:
/// no `{{` at all, no allocation). Only `{{ tasks.… }}`, `{{ item… }}` and `{{ index }}`
/// are expressions; other `{{ … }}` text, and a `{{` without `}}`, stay literal. The error
/// names the problem and quotes the expression.
pub fn parse(text: &str) -> Result<Option<Vec<Piece>>, String> {
    if !text.contains("{{") {
        return Ok(None);
    }
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut any = false;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            break;
        };
        let inner = after[..close].trim();
        literal.push_str(&rest[..open]);
        if is_ours(inner) {
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Expr(parse_expr(inner)?));
            any = true;
        } else {
            literal.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    if !any {
        return Ok(None);
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(Some(pieces))
}

/// Whether `text` holds a troupe expression (see [`parse`]; a malformed one counts).
pub fn has_exprs(text: &str) -> bool {
    !matches!(parse(text), Ok(None))
}

/// The expressions of `text` (empty if it has none); the first syntax error otherwise.
pub fn exprs(text: &str) -> Result<Vec<Expr>, String> {
    Ok(parse(text)?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| match p {
            Piece::Expr(e) => Some(e),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Parses a `for_each` value: exactly one `{{ tasks.ID.output... }}` expression and nothing
/// else around it.
pub fn parse_for_each(text: &str) -> Result<Expr, String> {
    let shape = || {
        format!(
            "for_each must be one expression naming an upstream output, such as \
             \"{{{{ tasks.list.output.files }}}}\"; got {text:?}"
        )
    };
    match parse(text.trim())? {
        Some(pieces) => match pieces.as_slice() {
            [Piece::Expr(e)] if matches!(e.root, Root::Output(_)) => Ok(e.clone()),
            _ => Err(shape()),
        },
        None => Err(shape()),
    }
}

fn parse_expr(src: &str) -> Result<Expr, String> {
    let bad = |why: &str| format!("`{{{{ {src} }}}}`: {why}");
    let (root, mut rest) = if let Some(r) = src.strip_prefix("tasks.") {
        // Ids may hold `.`: the id ends at the first `.output` followed by the end, `.` or `[`.
        let end = r
            .match_indices(".output")
            .map(|(i, _)| i)
            .find(|&i| {
                let after = &r[i + ".output".len()..];
                after.is_empty() || after.starts_with(['.', '['])
            })
            .ok_or_else(|| bad("expected `tasks.ID.output`"))?;
        let id = &r[..end];
        let id = TaskId::check_plain(id)
            .map(|()| TaskId::new(id).expect("checked"))
            .map_err(|e| bad(&e.to_string()))?;
        (Root::Output(id), &r[end + ".output".len()..])
    } else if let Some(r) = word(src, "item") {
        (Root::Item, r)
    } else if let Some(r) = word(src, "index") {
        (Root::Index, r)
    } else if let Some(r) = word(src, "input") {
        (Root::Input, r)
    } else {
        return Err(bad(
            "expected `tasks.ID.output`, `item` or `index` (with an optional path such as `.a.b[0]`)",
        ));
    };
    let mut path = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad(&format!(
                    "field name {name:?} may only use letters, digits, `_` and `-`"
                )));
            }
            path.push(Step::Field(name.to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("`[` without `]`"))?;
            let n: usize = r[..end]
                .parse()
                .map_err(|_| bad(&format!("{:?} is not an array index", &r[..end])))?;
            path.push(Step::Element(n));
            rest = &r[end + 1..];
        } else {
            return Err(bad(&format!("unexpected {rest:?}")));
        }
    }
    if root == Root::Index && !path.is_empty() {
        return Err(bad("`index` is a number and has no fields"));
    }
    Ok(Expr { root, path })
}

/// `src` after `word` if `src` is `word` followed by nothing or a path step.
fn word<'s>(src: &'s str, word: &str) -> Option<&'s str> {
    src.strip_prefix(word)
        .filter(|r| r.is_empty() || r.starts_with(['.', '[']))
}

/// What expressions are resolved against at dispatch.
pub trait Scope {
    /// The output of upstream task `id` (`None`: not available, which is an error).
    fn output(&self, id: &TaskId) -> Option<&Value>;
    /// The instance's element and index, for a mapped task's instance.
    fn item(&self) -> Option<(&Value, u32)>;
    /// The run's input (`null` when it was not spawned with one).
    fn input(&self) -> &Value;
}

impl Expr {
    /// The value the expression names in `scope`; the error quotes the expression and says
    /// which step is missing.
    pub fn eval<'v>(&self, scope: &'v dyn Scope) -> Result<std::borrow::Cow<'v, Value>, String> {
        use std::borrow::Cow;
        let start: Cow<'v, Value> = match &self.root {
            Root::Output(id) => Cow::Borrowed(
                scope
                    .output(id)
                    .ok_or_else(|| format!("{self}: task `{id}` has no output here"))?,
            ),
            Root::Item => Cow::Borrowed(
                scope
                    .item()
                    .ok_or_else(|| {
                        format!("{self}: only an instance of a mapped task has an item")
                    })?
                    .0,
            ),
            Root::Input => Cow::Borrowed(scope.input()),
            Root::Index => Cow::Owned(Value::from(
                scope
                    .item()
                    .ok_or_else(|| {
                        format!("{self}: only an instance of a mapped task has an index")
                    })?
                    .1,
            )),
        };
        match start {
            Cow::Borrowed(v) => follow(v, &self.path)
                .map(Cow::Borrowed)
                .map_err(|e| format!("{self}: {e}")),
            Cow::Owned(v) => follow(&v, &self.path)
                .map(|v| Cow::Owned(v.clone()))
                .map_err(|e| format!("{self}: {e}")),
        }
    }
}

/// Walks `path` from `value`; the error says which step found nothing.
pub fn follow<'v>(mut value: &'v Value, path: &[Step]) -> Result<&'v Value, String> {
    for step in path {
        value = match (step, value) {
            (Step::Field(name), Value::Object(map)) => map
                .get(name)
                .ok_or_else(|| format!("the object has no field `{name}`"))?,
            (Step::Element(i), Value::Array(items)) => items.get(*i).ok_or_else(|| {
                format!(
                    "no element [{i}]: the array has {} element{}",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" }
                )
            })?,
            (Step::Field(name), other) => {
                return Err(format!("`.{name}` needs an object, found {}", kind(other)))
            }
            (Step::Element(i), other) => {
                return Err(format!("`[{i}]` needs an array, found {}", kind(other)))
            }
        };
    }
    Ok(value)
}

/// "an object", "a string", ...: for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as pasted into text: a string as is, anything else as compact JSON.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders parsed `pieces` in `scope`.
pub fn render(pieces: &[Piece], scope: &dyn Scope) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(e) => {
                let v = e.eval(scope)?;
                out.push_str(&as_text(&v));
            }
        }
    }
    Ok(out)
}

/// Resolves every template of `text` in `scope` (text without `{{` is returned as is).
pub fn resolve(text: &str, scope: &dyn Scope) -> Result<String, String> {
    match parse(text)? {
        None => Ok(text.to_owned()),
        Some(pieces) => render(&pieces, scope),
    }
}

/// The number of instances `for_each` (already parsed) makes from `output`, the named
/// task's output: the length of the array its path names, at most `max`. The error says
/// what was found instead.
pub fn fan_out_count(expr: &Expr, output: &Value, max: u32) -> Result<u32, String> {
    let v = follow(output, &expr.path).map_err(|e| format!("{expr}: {e}"))?;
    match v {
        Value::Array(items) if items.len() <= max as usize => Ok(items.len() as u32),
        Value::Array(items) => Err(format!(
            "{expr} has {} elements, more than max_fan_out ({max})",
            items.len()
        )),
        other => Err(format!("{expr} must be an array, found {}", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S(Value, Option<(Value, u32)>);
    impl Scope for S {
        fn output(&self, id: &TaskId) -> Option<&Value> {
            (id.as_str() == "a").then_some(&self.0)
        }
        fn item(&self) -> Option<(&Value, u32)> {
            self.1.as_ref().map(|(v, i)| (v, *i))
        }
        fn input(&self) -> &Value {
            &Value::Null
        }
    }

    #[test]
    fn parses_and_resolves() {
        let s = S(
            json!({"files": ["x.rs", "y.rs"], "n": 3, "o": {"k": [1, 2]}}),
            Some((json!({"path": "p"}), 7)),
        );
        assert_eq!(resolve("plain", &s).unwrap(), "plain");
        assert_eq!(
            resolve("--f={{ tasks.a.output.files[1] }}", &s).unwrap(),
            "--f=y.rs"
        );
        assert_eq!(resolve("{{tasks.a.output.n}}", &s).unwrap(), "3");
        assert_eq!(
            resolve("{{ tasks.a.output.o }}", &s).unwrap(),
            r#"{"k":[1,2]}"#
        );
        assert_eq!(resolve("{{ item.path }}#{{ index }}", &s).unwrap(), "p#7");
        let e = resolve("{{ tasks.a.output.files[5] }}", &s).unwrap_err();
        assert!(e.contains("{{ tasks.a.output.files[5] }}"), "{e}");
        assert!(
            e.contains("no element [5]: the array has 2 elements"),
            "{e}"
        );
        let e = resolve("{{ tasks.a.output.n.x }}", &s).unwrap_err();
        assert!(e.contains("`.x` needs an object, found a number"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_expression() {
        for (text, want) in [
            ("{{ tasks.a }}", "expected `tasks.ID.output`"),
            ("{{ tasks.a.output[x] }}", "is not an array index"),
            ("{{ tasks.a b.output }}", "contains ' '"),
            ("{{ index.x }}", "has no fields"),
            ("{{ tasks.a.output. }}", "field name"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn other_braces_stay_literal_and_ids_may_hold_dots() {
        let s = S(json!({"x": 1}), None);
        for text in [
            "{{.Id}}",
            "{{ .Names }} {{ foo }}",
            "{{ tasks.a.output",
            "a {{ b",
        ] {
            assert_eq!(parse(text).unwrap(), None, "{text}");
            assert!(!has_exprs(text));
        }
        assert_eq!(
            resolve("--format={{.Id}} {{ tasks.a.output.x }}", &s).unwrap(),
            "--format={{.Id}} 1"
        );
        let e = &exprs("{{ tasks.build.x86_64-linux.output.artifacts[0] }}").unwrap()[0];
        assert_eq!(
            e.root,
            Root::Output(TaskId::new("build.x86_64-linux").unwrap())
        );
        assert_eq!(
            e.path,
            vec![Step::Field("artifacts".into()), Step::Element(0)]
        );
        let e = &exprs("{{ tasks.a.outputs.output }}").unwrap()[0];
        assert_eq!(e.root, Root::Output(TaskId::new("a.outputs").unwrap()));
    }

    #[test]
    fn for_each_is_one_output_expression() {
        let e = parse_for_each("{{ tasks.a.output.files }}").unwrap();
        assert_eq!(e.root, Root::Output(TaskId::new("a").unwrap()));
        assert_eq!(e.to_string(), "{{ tasks.a.output.files }}");
        for bad in [
            "x {{ tasks.a.output }}",
            "{{ item }}",
            "files",
            "{{ tasks.a.output }}{{ index }}",
        ] {
            assert!(parse_for_each(bad).is_err(), "{bad}");
        }
        let out = json!({"files": [1, 2, 3], "o": {}, "s": "x"});
        assert_eq!(fan_out_count(&e, &out, 10).unwrap(), 3);
        assert!(fan_out_count(&e, &out, 2)
            .unwrap_err()
            .contains("more than max_fan_out (2)"));
        let o = parse_for_each("{{ tasks.a.output.o }}").unwrap();
        assert!(fan_out_count(&o, &out, 10)
            .unwrap_err()
            .contains("must be an array, found an object"));
        let s = parse_for_each("{{ tasks.a.output.s }}").unwrap();
        assert!(fan_out_count(&s, &out, 10)
            .unwrap_err()
            .contains("found a string"));
        let empty = json!({"files": []});
        assert_eq!(fan_out_count(&e, &empty, 10).unwrap(), 0);
    }
}
