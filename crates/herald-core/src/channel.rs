//! Channel paths and subscription patterns.
//!
//! AppSync's rules: 1 to 5 segments separated by `/`, a leading and a trailing `/`
//! optional; each segment 1-50 characters of `[A-Za-z0-9-]`, not starting or ending
//! with `-`; case sensitive. The first segment is the namespace.
//!
//! Subscriptions may end in a `*` segment that matches every channel below the
//! prefix, at any depth (`/ns/*` matches `/ns/a` and `/ns/a/b/c`, but not `/ns`
//! itself, nor `/nsx/a`). The `*` counts as a segment (so `/a/b/c/d/*` is the
//! deepest wildcard) and must follow at least the namespace: `/*` and a `*` in
//! the middle of a path are rejected.
//!
//! Both types keep a canonical form with a leading slash and no trailing slash,
//! which is what handlers see as `ctx.info.channel.path`.

use crate::error::OpError;
use std::fmt;

/// Most segments in a channel path.
pub const MAX_SEGMENTS: usize = 5;
/// Longest segment.
pub const MAX_SEGMENT_LEN: usize = 50;

/// A concrete channel, the target of a publish: `/ns/a/b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel {
    path: String,
    /// Byte offset in `path` where each segment ends (exclusive). `ends[0]` ends
    /// the namespace, so `&path[..ends[k]]` is the prefix of `k + 1` segments.
    ends: [u16; MAX_SEGMENTS],
    len: u8,
}

/// What a subscription listens to: one channel, or every channel under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChannelPattern {
    /// Exactly this channel.
    Exact(Channel),
    /// `prefix/*`: every channel with more segments than `prefix` that starts with
    /// its segments. The stored channel is the prefix (`/ns/a` for `/ns/a/*`).
    Prefix(Channel),
}

fn validate_segment(seg: &str) -> Result<(), String> {
    if seg.is_empty() {
        return Err("empty segment".to_string());
    }
    if seg.len() > MAX_SEGMENT_LEN {
        // Characters, not bytes: a byte cut could fall inside a character
        // (a panic cargo fuzz found with a long non-ASCII segment).
        let shown: String = seg.chars().take(MAX_SEGMENT_LEN).collect();
        return Err(format!(
            "segment '{shown}…' is longer than {MAX_SEGMENT_LEN} characters"
        ));
    }
    if let Some(c) = seg
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "segment '{seg}' contains '{c}'; only letters, digits and '-' are allowed"
        ));
    }
    if seg.starts_with('-') || seg.ends_with('-') {
        return Err(format!("segment '{seg}' starts or ends with '-'"));
    }
    Ok(())
}

/// Strip one optional leading and one optional trailing slash.
fn trim_slashes(raw: &str) -> &str {
    let s = raw.strip_prefix('/').unwrap_or(raw);
    s.strip_suffix('/').unwrap_or(s)
}

fn invalid(raw: &str, why: impl fmt::Display) -> OpError {
    let shown: String = raw.chars().take(300).collect();
    OpError::bad_request(format!("Invalid channel '{shown}': {why}"))
}

impl Channel {
    /// Parse a publish target. Wildcards are refused.
    pub fn parse(raw: &str) -> Result<Channel, OpError> {
        let body = trim_slashes(raw);
        if body.is_empty() {
            return Err(invalid(raw, "a channel needs at least a namespace segment"));
        }
        if body.split('/').any(|s| s == "*") {
            return Err(invalid(raw, "cannot publish to a wildcard channel"));
        }
        Self::from_segments(raw, body)
    }

    fn from_segments(raw: &str, body: &str) -> Result<Channel, OpError> {
        let mut path = String::with_capacity(body.len() + 1);
        let mut ends = [0u16; MAX_SEGMENTS];
        let mut len = 0usize;
        for seg in body.split('/') {
            if len == MAX_SEGMENTS {
                return Err(invalid(
                    raw,
                    format_args!("more than {MAX_SEGMENTS} segments"),
                ));
            }
            validate_segment(seg).map_err(|why| invalid(raw, why))?;
            path.push('/');
            path.push_str(seg);
            ends[len] = path.len() as u16;
            len += 1;
        }
        Ok(Channel {
            path,
            ends,
            len: len as u8,
        })
    }

    /// The canonical path, `/ns/a/b`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The namespace: the first segment.
    pub fn namespace(&self) -> &str {
        &self.path[1..self.ends[0] as usize]
    }

    /// Number of segments (1-5).
    pub fn depth(&self) -> usize {
        self.len as usize
    }

    /// The segments, namespace first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path[1..].split('/')
    }

    /// The prefix made of the first `n` segments (`1 <= n <= depth`).
    pub fn prefix(&self, n: usize) -> &str {
        &self.path[..self.ends[n - 1] as usize]
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl ChannelPattern {
    /// Parse a subscription channel: a channel, or a prefix followed by `*`.
    pub fn parse(raw: &str) -> Result<ChannelPattern, OpError> {
        let body = trim_slashes(raw);
        if body.is_empty() {
            return Err(invalid(raw, "a channel needs at least a namespace segment"));
        }
        match body.strip_suffix("*") {
            Some("") => Err(invalid(
                raw,
                "a wildcard must follow the namespace, as in '/namespace/*'",
            )),
            Some(prefix) if prefix.ends_with('/') => {
                let prefix = &prefix[..prefix.len() - 1];
                if prefix.split('/').any(|s| s.contains('*')) {
                    return Err(invalid(raw, "'*' is only allowed as the last segment"));
                }
                if prefix.split('/').count() >= MAX_SEGMENTS {
                    return Err(invalid(
                        raw,
                        format_args!("more than {MAX_SEGMENTS} segments (the '*' counts as one)"),
                    ));
                }
                Ok(ChannelPattern::Prefix(Channel::from_segments(raw, prefix)?))
            }
            _ => {
                if body.contains('*') {
                    return Err(invalid(
                        raw,
                        "'*' is only allowed as a whole last segment, as in '/namespace/*'",
                    ));
                }
                Ok(ChannelPattern::Exact(Channel::from_segments(raw, body)?))
            }
        }
    }

    /// The namespace the pattern lives in.
    pub fn namespace(&self) -> &str {
        self.channel().namespace()
    }

    /// The exact channel, or the prefix of a wildcard.
    pub fn channel(&self) -> &Channel {
        match self {
            ChannelPattern::Exact(c) | ChannelPattern::Prefix(c) => c,
        }
    }

    /// Whether a publish to `channel` reaches this pattern.
    pub fn matches(&self, channel: &Channel) -> bool {
        match self {
            ChannelPattern::Exact(c) => c.path == channel.path,
            ChannelPattern::Prefix(p) => {
                channel.depth() > p.depth() && channel.prefix(p.depth()) == p.path()
            }
        }
    }
}

impl fmt::Display for ChannelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelPattern::Exact(c) => f.write_str(c.path()),
            ChannelPattern::Prefix(c) => write!(f, "{}/*", c.path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cargo fuzz (`channel_paths`): a segment over the length limit whose
    /// 50th byte falls inside a character panicked while being quoted.
    #[test]
    fn a_long_non_ascii_segment_is_refused_not_a_panic() {
        let raw = format!("/d{}", "\u{1c05}".repeat(20));
        let e = Channel::parse(&raw).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        assert!(ChannelPattern::parse(&format!("{raw}/*")).is_err());
    }

    #[test]
    fn canonical_forms() {
        for raw in [
            "default/a/b",
            "/default/a/b",
            "/default/a/b/",
            "default/a/b/",
        ] {
            let c = Channel::parse(raw).unwrap();
            assert_eq!(c.path(), "/default/a/b");
            assert_eq!(c.namespace(), "default");
            assert_eq!(c.depth(), 3);
            assert_eq!(c.segments().collect::<Vec<_>>(), ["default", "a", "b"]);
            assert_eq!(c.prefix(2), "/default/a");
        }
        assert_eq!(Channel::parse("ns").unwrap().path(), "/ns");
    }

    #[test]
    fn segment_rules() {
        let fifty = "a".repeat(50);
        assert!(Channel::parse(&format!("/ns/{fifty}")).is_ok());
        assert!(Channel::parse(&format!("/ns/{fifty}b")).is_err());
        assert!(Channel::parse("/ns/a-b/C9").is_ok());
        for bad in [
            "",
            "/",
            "//",
            "/ns//a",
            "/ns/-a",
            "/ns/a-",
            "/ns/a_b",
            "/ns/a.b",
            "/ns/é",
            "/ns/a b",
            "ns/a/b/c/d/e",
            "/ns/*",
            "/ns/a*",
        ] {
            assert!(Channel::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Channel::parse("/a/b/c/d/e").is_ok());
        let err = Channel::parse("/ns/*").unwrap_err();
        assert!(err.message.contains("wildcard"), "{err}");
    }

    #[test]
    fn patterns() {
        let p = ChannelPattern::parse("default/*").unwrap();
        assert_eq!(p.to_string(), "/default/*");
        assert_eq!(p.namespace(), "default");
        let m = |c: &str| p.matches(&Channel::parse(c).unwrap());
        assert!(m("/default/a"));
        assert!(m("/default/a/b/c/d"));
        assert!(!m("/default"));
        assert!(!m("/defaultx/a"));
        assert!(!m("/other/a"));

        let deep = ChannelPattern::parse("/a/b/*").unwrap();
        assert!(deep.matches(&Channel::parse("/a/b/c").unwrap()));
        assert!(!deep.matches(&Channel::parse("/a/bc/d").unwrap()));
        assert!(!deep.matches(&Channel::parse("/a/b").unwrap()));

        let exact = ChannelPattern::parse("/a/b").unwrap();
        assert!(exact.matches(&Channel::parse("a/b/").unwrap()));
        assert!(!exact.matches(&Channel::parse("/a/b/c").unwrap()));

        assert!(ChannelPattern::parse("/a/b/c/d/*").is_ok());
        for bad in [
            "/*",
            "*",
            "/a/*/b",
            "/a/**",
            "/a/b*",
            "/a/b/c/d/e/*",
            "/a/*/*",
        ] {
            assert!(
                ChannelPattern::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
