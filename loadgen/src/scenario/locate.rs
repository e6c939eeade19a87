//! Find the line of a TOML key from its dotted path (`load.steps[1].users`),
//! so semantic errors point where the user has to look.

use toml::de::{DeTable, DeValue};

/// 1-based line of the key at `path` in `text`, or of its nearest existing parent.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut best: Option<usize> = None;
    let mut table = doc.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    for part in split_path(path) {
        let (key, index) = part;
        if !key.is_empty() {
            let current = match value {
                None => table,
                Some(DeValue::Table(t)) => t,
                Some(_) => break,
            };
            let Some((k, v)) = current.get_key_value(key) else {
                break;
            };
            best = Some(k.span().start);
            value = Some(v.get_ref());
            let _ = &mut table;
        }
        if let Some(i) = index {
            let Some(DeValue::Array(items)) = value else {
                break;
            };
            let Some(item) = items.get(i) else {
                break;
            };
            best = Some(item.span().start);
            value = Some(item.get_ref());
        }
    }
    best.map(|offset| text[..offset.min(text.len())].matches('\n').count() + 1)
}

/// `a.b[2].c` → `[("a", None), ("b", Some(2)), ("c", None)]`.
fn split_path(path: &str) -> Vec<(&str, Option<usize>)> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .map(|part| match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse().ok()),
            None => (part, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name = \"x\"\n\n[load]\nusers = [1, 2]\n\n[[load.steps]]\nusers = 1\n\n[[load.steps]]\nusers = 2\nrate = 3.0\n";

    #[test]
    fn finds_nested_keys_and_array_items() {
        assert_eq!(line_of(DOC, "name"), Some(1));
        assert_eq!(line_of(DOC, "load.users"), Some(4));
        assert_eq!(line_of(DOC, "load.steps[1].rate"), Some(11));
        assert_eq!(line_of(DOC, "load.steps[0].users"), Some(7));
    }

    #[test]
    fn falls_back_to_the_nearest_parent() {
        assert_eq!(line_of(DOC, "load.missing"), Some(3));
        assert_eq!(line_of(DOC, "nothing"), None);
    }
}
