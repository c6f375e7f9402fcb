//! `${VAR}` in string values, read from the environment so secrets never live in files.
//!
//! `$${` writes a literal `${`. An unset or empty-named variable is an error naming it; the
//! value itself is never echoed in errors.

use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub span: Range<usize>,
    pub message: String,
}

/// Expand `${VAR}` in one string.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            // `$${` is an escaped literal `${`
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(format!(
                    "unterminated `${{` in {text:?}: write `${{NAME}}`, or `$${{` for a literal `${{`"
                ));
            };
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name (letters, digits and _)"
                ));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(format!(
                        "environment variable `{name}` is not set (used as `${{{name}}}`); \
                         export it before running darkroom"
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expand every string value in the document, collecting every error.
pub fn expand_table(
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<InterpolationError>,
) {
    for (_key, value) in table.iter_mut() {
        expand_value(value, env, errors);
    }
}

fn expand_value(
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<InterpolationError>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => *s = expanded.into(),
            Err(message) => errors.push(InterpolationError { span, message }),
        },
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_value(item, env, errors);
            }
        }
        DeValue::Table(t) => expand_table(t, env, errors),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DB_URL" => Some("postgres://u:p@h/db".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables() {
        assert_eq!(
            expand("x=${DB_URL};", &env).unwrap(),
            "x=postgres://u:p@h/db;"
        );
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(expand("$${DB_URL}", &env).unwrap(), "${DB_URL}");
    }

    #[test]
    fn unset_variable_is_named() {
        let err = expand("${MISSING_SECRET}", &env).unwrap_err();
        assert!(err.contains("MISSING_SECRET"), "{err}");
        assert!(expand("${bad name}", &env).is_err());
        assert!(expand("${OPEN", &env).is_err());
    }
}
