//! The configuration tree as the `config` crate builds it, before serde:
//! paths into it, so that a key serde refuses can be named and removed and
//! the rest deserialized again (see `deserialize_collecting`).

use config::{Value, ValueKind};

pub(super) fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("[{index}]")),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

pub(super) fn join_key(segments: &[String]) -> String {
    let mut key = String::new();
    for segment in segments {
        if !key.is_empty() && !segment.starts_with('[') {
            key.push('.');
        }
        key.push_str(segment);
    }
    key
}

/// The value at `segments`, if there is one.
fn value_at<'a>(tree: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut node = tree;
    for segment in segments {
        node = match (&node.kind, segment.strip_prefix('[')) {
            (ValueKind::Array(items), Some(index)) => {
                items.get(index.trim_end_matches(']').parse::<usize>().ok()?)?
            }
            (ValueKind::Table(table), None) => table.get(segment)?,
            _ => return None,
        };
    }
    Some(node)
}

pub(super) fn has_path(tree: &Value, segments: &[String]) -> bool {
    value_at(tree, segments).is_some()
}

/// The full path of the first key named `name` below `parent` (depth first).
pub(super) fn find_key(tree: &Value, parent: &[String], name: &str) -> Option<Vec<String>> {
    fn walk(node: &Value, path: &mut Vec<String>, name: &str) -> Option<Vec<String>> {
        match &node.kind {
            ValueKind::Table(table) => {
                let mut keys: Vec<&String> = table.keys().collect();
                keys.sort();
                for key in keys {
                    path.push(key.clone());
                    if key == name {
                        return Some(path.clone());
                    }
                    if let Some(found) = walk(&table[key], path, name) {
                        return Some(found);
                    }
                    path.pop();
                }
                None
            }
            ValueKind::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(format!("[{index}]"));
                    if let Some(found) = walk(item, path, name) {
                        return Some(found);
                    }
                    path.pop();
                }
                None
            }
            _ => None,
        }
    }
    let mut path = parent.to_vec();
    walk(value_at(tree, parent)?, &mut path, name)
}

/// Removes the value at `segments`; false if there was nothing to remove.
pub(super) fn remove_path(tree: &mut Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (&mut node.kind, segment.strip_prefix('[')) {
            (ValueKind::Array(items), Some(index)) => {
                match index
                    .trim_end_matches(']')
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                {
                    Some(item) => item,
                    None => return false,
                }
            }
            (ValueKind::Table(table), None) => match table.get_mut(segment) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&mut node.kind, last.strip_prefix('[')) {
        (ValueKind::Table(table), None) => table.remove(last).is_some(),
        (ValueKind::Array(items), Some(index)) => {
            match index.trim_end_matches(']').parse::<usize>() {
                Ok(i) if i < items.len() => {
                    // Keep indices stable for later messages: blank the entry instead.
                    items[i] = Value::new(None, ValueKind::Table(Default::default()));
                    true
                }
                _ => false,
            }
        }
        _ => false,
    }
}
