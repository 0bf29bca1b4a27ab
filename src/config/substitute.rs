//! `${VAR}` substitution, done on the text before it is parsed (see the module docs of
//! [`crate::config`]).

use super::ConfigError;

/// Replaces `${VAR}` and `${VAR:-default}` outside comments (see the module docs); errors
/// name the file, line and column of the `${`.
pub fn substitute(
    text: &str,
    name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 1;
        let mut quote: Option<char> = None;
        while let Some(c) = rest.chars().next() {
            let at = |msg: String| ConfigError(format!("{name}:{}:{col}: {msg}", n + 1));
            if quote.is_none() && c == '#' {
                out.push_str(rest);
                break;
            }
            if rest.starts_with("$${") {
                out.push_str("${");
                rest = &rest[3..];
                col += 3;
                continue;
            }
            if rest.starts_with("${") {
                let end = rest
                    .find('}')
                    .ok_or_else(|| at("`${` without a closing `}`".into()))?;
                let inner = &rest[2..end];
                let (var, default) = match inner.split_once(":-") {
                    Some((v, d)) => (v, Some(d)),
                    None => (inner, None),
                };
                let valid = var
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(at(format!(
                        "`${{{inner}}}`: `{var}` is not a variable name (letters, digits, `_`)"
                    )));
                }
                let value = match (env(var), default) {
                    (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
                    (Some(v), _) => v,
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => {
                        return Err(at(format!(
                            "`${{{var}}}`: the environment variable {var} is not set (set it, or \
                             give a default: `${{{var}:-value}}`)"
                        )))
                    }
                };
                out.push_str(&value);
                col += rest[..=end].chars().count();
                rest = &rest[end + 1..];
                continue;
            }
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            col += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;

    #[test]
    fn substitution_forms() {
        let e = env(&[("A", "8"), ("EMPTY", "")]);
        let t =
            "workers = ${A}\ngrace = \"${B:-3s}\"  # ${NOT_EXPANDED}\nx = \"${EMPTY:-d}$${A}\"\n";
        assert_eq!(
            substitute(t, "t.toml", &e).unwrap(),
            "workers = 8\ngrace = \"3s\"  # ${NOT_EXPANDED}\nx = \"d${A}\"\n"
        );
        let err = |t: &str| substitute(t, "t.toml", &e).unwrap_err().to_string();
        assert!(err("a = 1\nb = \"x${UNSET}\"\n")
            .starts_with("t.toml:2:7: `${UNSET}`: the environment variable UNSET is not set"));
        assert!(err("a = ${1X}\n").starts_with("t.toml:1:5: `${1X}`"));
        assert!(err("a = ${A\n").starts_with("t.toml:1:5: `${` without"));
    }
}
