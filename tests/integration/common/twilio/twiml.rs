//! A strict reader of the inline TwiML a call is created with.

use std::collections::HashMap;

/// Reads an inline TwiML document far enough to run it: it must be
/// well-formed (balanced tags, quoted attributes, only the five predefined
/// entities and character references) with a `<Response>` root. Returns the
/// first `<Gather>`'s attributes and the text of every `<Say>`.
pub(super) fn read_twiml(doc: &str) -> Option<(HashMap<String, String>, Vec<String>)> {
    let mut rest = doc.trim();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = &after[after.find("?>")? + 2..];
    }
    let mut stack: Vec<String> = Vec::new();
    let mut gather = None;
    let mut said = Vec::new();
    let mut text = String::new();
    let mut seen_root = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>')?;
            let tag = &after[..end];
            rest = &after[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop()? != name.trim() {
                    return None;
                }
                if name.trim() == "Say" {
                    said.push(std::mem::take(&mut text));
                }
                continue;
            }
            let (tag, empty) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let (name, attributes) = parse_tag(tag)?;
            if stack.is_empty() {
                if seen_root || name != "Response" {
                    return None;
                }
                seen_root = true;
            }
            if name == "Gather" && gather.is_none() {
                gather = Some(attributes);
            }
            if name == "Say" {
                text.clear();
            }
            if !empty {
                stack.push(name);
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            text.push_str(&unescape(&rest[..end])?);
            rest = &rest[end..];
        }
    }
    (stack.is_empty() && seen_root).then_some(())?;
    Some((gather?, said))
}

fn parse_tag(tag: &str) -> Option<(String, HashMap<String, String>)> {
    let tag = tag.trim();
    let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
    let name = &tag[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut attributes = HashMap::new();
    let mut rest = tag[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let close = after[1..].find(quote)?;
        let raw = &after[1..1 + close];
        if raw.contains('<') || attributes.contains_key(key) {
            return None;
        }
        attributes.insert(key.to_string(), unescape(raw)?);
        rest = after[close + 2..].trim_start();
    }
    Some((name.to_string(), attributes))
}

/// Resolves entity and character references; a bare `&` or an unknown
/// entity is not well-formed (`None`).
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';')? + at;
        let entity = &rest[at + 1..end];
        out.push(match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = entity.strip_prefix('#')?;
                let code = match number.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)?
            }
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[test]
fn emulator_reads_twiml_strictly() {
    let (gather, said) = read_twiml(
        "<Response><Gather action=\"https://x/a?b=1&amp;c=2\" numDigits=\"1\"><Say>Hi &lt;you&gt;</Say></Gather><Say>Bye</Say></Response>",
    )
    .unwrap();
    assert_eq!(gather["action"], "https://x/a?b=1&c=2");
    assert_eq!(said, ["Hi <you>", "Bye"]);
    for bad in [
        "<Response><Gather action=\"x\"><Say>Hi</Gather></Say></Response>",
        "<Response><Gather action=x></Gather></Response>",
        "<Response><Say>a & b</Say><Gather action=\"x\"/></Response>",
        "<Response><Gather action=\"x\"/></Response><Response/>",
        "<Response><Say>no gather</Say></Response>",
    ] {
        assert!(read_twiml(bad).is_none(), "{bad}");
    }
}
