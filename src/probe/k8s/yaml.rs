//! A kubeconfig file (YAML) read into a JSON value with saphyr-parser, the YAML parser already
//! in the binary for render-config: every scalar becomes a string (kubeconfig fields are strings
//! and booleans, read as such where they are used), anchors and aliases resolve.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};

/// The first document of `text`; an empty file is an empty mapping. Errors name line and column.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut open: Vec<(Value, Option<String>, usize)> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    for event in Parser::new_from_str(text) {
        let (event, _span) = event.map_err(|error| {
            let marker = error.marker();
            format!(
                "line {} column {}: {}",
                marker.line(),
                marker.col() + 1,
                error.info()
            )
        })?;
        let (node, anchor) = match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain_null =
                    style == ScalarStyle::Plain && matches!(value.as_ref(), "" | "~" | "null");
                let node = if plain_null {
                    Value::Null
                } else {
                    Value::String(value.into_owned())
                };
                (node, anchor)
            }
            Event::Alias(id) => (anchors.get(&id).cloned().unwrap_or(Value::Null), 0),
            Event::MappingStart(anchor, _) => {
                open.push((Value::Object(Map::new()), None, anchor));
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                open.push((Value::Array(Vec::new()), None, anchor));
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (node, _, anchor) = open.pop().ok_or("unbalanced YAML")?;
                (node, anchor)
            }
            Event::DocumentEnd if open.is_empty() => break,
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match open.last_mut() {
            None => return Ok(node),
            Some((Value::Array(items), _, _)) => items.push(node),
            Some((Value::Object(map), key, _)) => match key.take() {
                None => *key = Some(scalar_key(node)?),
                Some(key) => {
                    map.insert(key, node);
                }
            },
            Some(_) => unreachable!("only collections are open"),
        }
    }
    Ok(Value::Object(Map::new()))
}

fn scalar_key(node: Value) -> Result<String, String> {
    match node {
        Value::String(key) => Ok(key),
        Value::Null => Ok(String::new()),
        _ => Err("a mapping key that is not a scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_block_and_flow_styles_and_aliases() {
        let value = parse(
            "a: 1\nb: {c: d, e: [f, 'g']}\nlist:\n- name: x\n  v: &v yes\n- name: y\n  v: *v\nnone: ~\n",
        )
        .unwrap();
        assert_eq!(value["a"], "1");
        assert_eq!(value["b"]["c"], "d");
        assert_eq!(value["b"]["e"][1], "g");
        assert_eq!(value["list"][1]["v"], "yes");
        assert_eq!(value["none"], Value::Null);
        assert_eq!(parse("").unwrap(), Value::Object(Map::new()));
        assert!(parse("a: [b\n").unwrap_err().starts_with("line "));
    }
}
