//! `wildcard` patterns: `*` matches any run of characters (none included);
//! `\*` is a literal star and `\\` a literal backslash. Two unescaped `*` in a
//! row are refused (EventBridge's rule: they cost without meaning more).

/// A compiled wildcard: literal pieces between stars.
#[derive(Debug, Clone, PartialEq)]
pub struct Wildcard {
    /// The literal text before the first star, between stars, and after the
    /// last one; `pieces.len() - 1` stars.
    pieces: Vec<String>,
}

impl Wildcard {
    pub fn parse(text: &str) -> Result<Wildcard, String> {
        let mut pieces = vec![String::new()];
        let mut chars = text.chars().peekable();
        let mut last_was_star = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('*' | '\\')) => {
                        pieces.last_mut().unwrap().push(e);
                        last_was_star = false;
                    }
                    _ => {
                        return Err(format!(
                            "'{text}' has a backslash that escapes neither '*' nor '\\'"
                        ))
                    }
                },
                '*' => {
                    if last_was_star {
                        return Err(format!(
                            "'{text}' has consecutive wildcard characters ('**')"
                        ));
                    }
                    pieces.push(String::new());
                    last_was_star = true;
                }
                c => {
                    pieces.last_mut().unwrap().push(c);
                    last_was_star = false;
                }
            }
        }
        Ok(Wildcard { pieces })
    }

    pub fn matches(&self, s: &str) -> bool {
        let (first, rest) = self.pieces.split_first().expect("at least one piece");
        let Some(mut s) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return s.is_empty();
        };
        // Each middle piece at its leftmost place leaves the most room for the
        // rest: greedy is exact for stars-only patterns.
        for piece in middle {
            match s.find(piece.as_str()) {
                Some(i) => s = &s[i + piece.len()..],
                None => return false,
            }
        }
        s.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Wildcard;

    #[test]
    fn stars_and_escapes() {
        let w = |p: &str, s: &str| Wildcard::parse(p).unwrap().matches(s);
        assert!(w("dir/*.png", "dir/a/b.png"));
        assert!(!w("dir/*.png", "dir/a.jpg"));
        assert!(w("*", ""));
        assert!(w("a*b*c", "abc"));
        assert!(w("a*b*c", "a--b--b--c"));
        assert!(!w("a*b*c", "acb"));
        assert!(w("ab*ab", "abab"));
        assert!(!w("ab*ab", "aba"));
        assert!(w(r"a\*b", "a*b"));
        assert!(!w(r"a\*b", "axb"));
        assert!(w(r"a\\*", r"a\anything"));
        assert!(w("exact", "exact"));
        assert!(!w("exact", "exact!"));
        assert!(Wildcard::parse("a**b").is_err());
        assert!(Wildcard::parse(r"a\b").is_err());
        assert!(Wildcard::parse(r"a\*\**").is_ok());
    }
}
