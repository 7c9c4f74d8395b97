//! Reading Redis replies (RESP2 and RESP3 shapes alike) for the stream
//! commands Herald uses: the event source mapping's Redis Streams source and
//! the event bus's Redis log share these.

use redis::Value as RValue;

/// A scalar reply as text.
pub fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RValue::SimpleString(s) => Some(s.clone()),
        RValue::VerbatimString { text, .. } => Some(text.clone()),
        RValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// An array's elements, or a map's as key, value, key, value, ...
pub fn items(v: &RValue) -> Vec<&RValue> {
    match v {
        RValue::Array(a) | RValue::Set(a) => a.iter().collect(),
        RValue::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]` entries.
pub fn entries(list: &RValue) -> Vec<(String, Vec<(String, String)>)> {
    items(list)
        .into_iter()
        .filter_map(|e| {
            let parts = items(e);
            let id = text(parts.first()?)?;
            let fields = items(parts.get(1)?);
            let pairs = fields
                .chunks(2)
                .filter_map(|c| Some((text(c.first()?)?, text(c.get(1)?)?)))
                .collect();
            Some((id, pairs))
        })
        .collect()
}

/// An `XREADGROUP` reply's entries, in order: `[[key, entries]]` (RESP2)
/// or `{key: entries}` (RESP3); none on a timeout (nil).
pub fn read_reply(reply: &RValue) -> Vec<(String, Vec<(String, String)>)> {
    let streams = items(reply);
    let lists: Vec<&RValue> = match reply {
        RValue::Map(_) => streams.into_iter().skip(1).step_by(2).collect(),
        _ => streams
            .into_iter()
            .filter_map(|s| items(s).get(1).copied())
            .collect(),
    };
    lists.into_iter().flat_map(entries).collect()
}
