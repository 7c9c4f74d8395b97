//! Step Functions' intrinsic functions (`States.Format('{} items', $.n)`),
//! for JSONPath states: parsed when the state machine is created, evaluated
//! with the state's paths resolved by the caller. A failure is the error
//! `States.IntrinsicFailure`.

use base64::Engine as _;
use serde_json::{json, Value};

/// A parsed intrinsic call or argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Call(String, Vec<Expr>),
    Literal(Value),
    /// `$.x`, `$$.Execution.Id`, `$var.x`: resolved by the caller.
    Path(String),
}

const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("States.Format", 1, usize::MAX),
    ("States.StringToJson", 1, 1),
    ("States.JsonToString", 1, 1),
    ("States.Array", 0, usize::MAX),
    ("States.ArrayPartition", 2, 2),
    ("States.ArrayContains", 2, 2),
    ("States.ArrayRange", 3, 3),
    ("States.ArrayGetItem", 2, 2),
    ("States.ArrayLength", 1, 1),
    ("States.ArrayUnique", 1, 1),
    ("States.Base64Encode", 1, 1),
    ("States.Base64Decode", 1, 1),
    ("States.Hash", 2, 2),
    ("States.JsonMerge", 3, 3),
    ("States.MathRandom", 2, 3),
    ("States.MathAdd", 2, 2),
    ("States.StringSplit", 2, 2),
    ("States.UUID", 0, 0),
];

/// An escaped `{` or `}` inside a string literal, until evaluation.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

fn unescape(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains([OPEN, CLOSE]) => {
            Value::String(s.replace(OPEN, "{").replace(CLOSE, "}"))
        }
        other => other,
    }
}

/// Whether a `.$` value is an intrinsic call (rather than a path).
pub fn is_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(char::is_whitespace) {
            self.i += self.s[self.i..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.ws();
        let rest = &self.s[self.i..];
        if rest.starts_with("States.") {
            let open = rest.find('(').ok_or("an intrinsic function needs (")?;
            let name = rest[..open].trim().to_string();
            let Some((_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
                return Err(format!("unknown intrinsic function {name}"));
            };
            self.i += open + 1;
            let mut args = Vec::new();
            self.ws();
            if self.s[self.i..].starts_with(')') {
                self.i += 1;
            } else {
                loop {
                    args.push(self.expr()?);
                    self.ws();
                    match self.s[self.i..].chars().next() {
                        Some(',') => self.i += 1,
                        Some(')') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(format!("{name}: expected , or )")),
                    }
                }
            }
            if args.len() < *min || args.len() > *max {
                return Err(format!(
                    "{name}: wrong number of arguments ({})",
                    args.len()
                ));
            }
            return Ok(Expr::Call(name, args));
        }
        if let Some(body) = rest.strip_prefix('\'') {
            let mut out = String::new();
            let mut chars = body.char_indices();
            while let Some((n, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        // Escaped braces stay apart from `{}` placeholders.
                        Some((_, '{')) => out.push(OPEN),
                        Some((_, '}')) => out.push(CLOSE),
                        Some((_, e)) => out.push(e),
                        None => break,
                    },
                    '\'' => {
                        self.i += 1 + n + 1;
                        return Ok(Expr::Literal(Value::String(out)));
                    }
                    c => out.push(c),
                }
            }
            return Err("an unclosed string".into());
        }
        if rest.starts_with('$') {
            // To the first `,` or `)` outside brackets and quotes (a
            // filter or a union holds both).
            let mut depth = 0i32;
            let mut quote = None;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(c),
                    (None, '[' | '(') if depth > 0 || c == '[' => depth += 1,
                    (None, ']') => depth -= 1,
                    (None, ')') if depth > 0 => depth -= 1,
                    (None, ',' | ')') if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            self.i += end;
            return Ok(Expr::Path(rest[..end].trim().to_string()));
        }
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        let text = rest[..end].trim();
        let v: Value = serde_json::from_str(text)
            .map_err(|_| format!("{text} is not a string, number, boolean, null or path"))?;
        if v.is_object() || v.is_array() {
            return Err(format!("{text}: only strings, numbers, booleans and null"));
        }
        self.i += end;
        Ok(Expr::Literal(v))
    }
}

/// Parse an intrinsic call.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser { s: text, i: 0 };
    let e = p.expr()?;
    p.ws();
    if p.i != text.len() {
        return Err(format!("unexpected text after the call: {}", &text[p.i..]));
    }
    if !matches!(e, Expr::Call(..)) {
        return Err("not an intrinsic function call".into());
    }
    Ok(e)
}

fn fail(name: &str, why: impl std::fmt::Display) -> String {
    format!("Invalid arguments in {name}: {why}")
}

fn int(v: &Value, name: &str) -> Result<i64, String> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        .ok_or_else(|| fail(name, format!("{v} is not an integer")))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Evaluate with `resolve` giving each path's value.
pub fn eval(e: &Expr, resolve: &dyn Fn(&str) -> Result<Value, String>) -> Result<Value, String> {
    let (name, args) = match e {
        Expr::Literal(v) => return Ok(unescape(v.clone())),
        Expr::Path(p) => return resolve(p),
        Expr::Call(name, args) => (name.as_str(), args),
    };
    let mut a: Vec<Value> = args
        .iter()
        .map(|x| eval(x, resolve))
        .collect::<Result<_, _>>()?;
    if let (Some(Expr::Literal(raw)), true) = (args.first(), name == "States.Format") {
        a[0] = raw.clone();
    }
    let string = |i: usize| -> Result<&str, String> {
        a[i].as_str()
            .ok_or_else(|| fail(name, format!("argument {} must be a string", i + 1)))
    };
    let array = |i: usize| -> Result<&Vec<Value>, String> {
        a[i].as_array()
            .ok_or_else(|| fail(name, format!("argument {} must be an array", i + 1)))
    };
    Ok(match name {
        "States.Format" => {
            let template = string(0)?;
            let mut out = String::new();
            let mut n = 1;
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    OPEN => out.push('{'),
                    CLOSE => out.push('}'),
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let v = a
                            .get(n)
                            .ok_or_else(|| fail(name, "more {} than arguments"))?;
                        if v.is_object() || v.is_array() {
                            return Err(fail(
                                name,
                                "arguments must be strings, numbers, booleans or null",
                            ));
                        }
                        out.push_str(&text_of(v));
                        n += 1;
                    }
                    c => out.push(c),
                }
            }
            if n != a.len() {
                return Err(fail(name, "more arguments than {}"));
            }
            Value::String(out)
        }
        "States.StringToJson" => serde_json::from_str(string(0)?).map_err(|e| fail(name, e))?,
        "States.JsonToString" => Value::String(a[0].to_string()),
        "States.Array" => Value::Array(a.clone()),
        "States.ArrayPartition" => {
            let size = int(&a[1], name)?;
            if size <= 0 {
                return Err(fail(name, "the chunk size must be positive"));
            }
            Value::Array(
                array(0)?
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            )
        }
        "States.ArrayContains" => Value::Bool(array(0)?.contains(&a[1])),
        "States.ArrayRange" => {
            let (start, end, step) = (int(&a[0], name)?, int(&a[1], name)?, int(&a[2], name)?);
            if step == 0 {
                return Err(fail(name, "the step must not be 0"));
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                out.push(json!(i));
                if out.len() > 1000 {
                    return Err(fail(name, "at most 1000 items"));
                }
                i += step;
            }
            Value::Array(out)
        }
        "States.ArrayGetItem" => {
            let i = int(&a[1], name)?;
            array(0)?
                .get(usize::try_from(i).map_err(|_| fail(name, "a negative index"))?)
                .cloned()
                .ok_or_else(|| fail(name, "index out of range"))?
        }
        "States.ArrayLength" => json!(array(0)?.len()),
        "States.ArrayUnique" => {
            let mut out: Vec<Value> = Vec::new();
            for v in array(0)? {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        "States.Base64Encode" => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(string(0)?))
        }
        "States.Base64Decode" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(string(0)?)
                .map_err(|e| fail(name, e))?;
            Value::String(String::from_utf8(bytes).map_err(|e| fail(name, e))?)
        }
        "States.Hash" => {
            Value::String(hash(&text_of(&a[0]), string(1)?).map_err(|e| fail(name, e))?)
        }
        "States.JsonMerge" => {
            if a[2] != Value::Bool(false) {
                return Err(fail(name, "only shallow merges (false) are supported"));
            }
            let (Some(x), Some(y)) = (a[0].as_object(), a[1].as_object()) else {
                return Err(fail(name, "both arguments must be objects"));
            };
            let mut out = x.clone();
            for (k, v) in y {
                out.insert(k.clone(), v.clone());
            }
            Value::Object(out)
        }
        "States.MathRandom" => {
            let (lo, hi) = (int(&a[0], name)?, int(&a[1], name)?);
            if hi <= lo {
                return Err(fail(name, "the end must be above the start"));
            }
            json!(lo + (rand::random::<u64>() % (hi - lo) as u64) as i64)
        }
        "States.MathAdd" => json!(int(&a[0], name)?
            .checked_add(int(&a[1], name)?)
            .ok_or_else(|| fail(name, "overflow"))?),
        "States.StringSplit" => {
            let (s, sep) = (string(0)?, string(1)?);
            Value::Array(
                s.split(|c| sep.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        "States.UUID" => Value::String(crate::new_uuid().to_string()),
        other => return Err(format!("unknown intrinsic function {other}")),
    })
}

/// `data`'s digest in hex: MD5, SHA-1, SHA-256, SHA-384 or SHA-512.
pub fn hash(data: &str, algorithm: &str) -> Result<String, String> {
    let digest: Vec<u8> = match algorithm {
        "MD5" => {
            use md5::Digest;
            md5::Md5::digest(data.as_bytes()).to_vec()
        }
        "SHA-1" => ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data.as_bytes())
            .as_ref()
            .to_vec(),
        "SHA-256" => ring::digest::digest(&ring::digest::SHA256, data.as_bytes())
            .as_ref()
            .to_vec(),
        "SHA-384" => ring::digest::digest(&ring::digest::SHA384, data.as_bytes())
            .as_ref()
            .to_vec(),
        "SHA-512" => ring::digest::digest(&ring::digest::SHA512, data.as_bytes())
            .as_ref()
            .to_vec(),
        other => return Err(format!("unknown algorithm {other}")),
    };
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The functions Step Functions adds to JSONata: `$partition(array,
/// size)`, `$range(start, end, step)`, `$hash(data, algorithm)`,
/// `$uuid()`, `$parse(text)` (JSONata's own `$random()` serves too).
pub const JSONATA_FUNCTIONS: &[(&str, crate::jsonata::HostFunction)] = &[
    ("partition", |a| {
        let list = a
            .first()
            .and_then(Value::as_array)
            .ok_or("$partition: an array first")?;
        let size = a
            .get(1)
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or("$partition: a positive size")?;
        Ok(Value::Array(
            list.chunks(size as usize)
                .map(|c| Value::Array(c.to_vec()))
                .collect(),
        ))
    }),
    ("range", |a| {
        let n = |i: usize| a.get(i).and_then(Value::as_f64);
        let (start, end) = (
            n(0).ok_or("$range: a start")?,
            n(1).ok_or("$range: an end")?,
        );
        let step = n(2).unwrap_or(1.0);
        if step == 0.0 {
            return Err("$range: the step must not be 0".into());
        }
        let mut out = Vec::new();
        let mut x = start;
        while (step > 0.0 && x <= end) || (step < 0.0 && x >= end) {
            if out.len() >= 1000 {
                return Err("$range: at most 1000 items".into());
            }
            out.push(json!(x));
            x += step;
        }
        Ok(Value::Array(
            out.into_iter()
                .map(|v| match v.as_f64() {
                    Some(f) if f.fract() == 0.0 => json!(f as i64),
                    _ => v,
                })
                .collect(),
        ))
    }),
    ("hash", |a| {
        let data = a.first().map(text_of).ok_or("$hash: data")?;
        let alg = a.get(1).and_then(Value::as_str).unwrap_or("SHA-256");
        hash(&data, alg)
            .map(Value::String)
            .map_err(|e| format!("$hash: {e}"))
    }),
    ("uuid", |_| Ok(Value::String(crate::new_uuid().to_string()))),
    ("parse", |a| {
        let text = a
            .first()
            .and_then(Value::as_str)
            .ok_or("$parse: a string")?;
        serde_json::from_str(text).map_err(|e| format!("$parse: {e}"))
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Value, String> {
        let input = json!({"n": 3, "name": "Ada", "list": [1, 2, 2, 3], "o": {"a": 1}});
        let e = parse(text)?;
        eval(&e, &|p| {
            crate::jsonpath::JsonPath::parse(p)?
                .select(&input)
                .ok_or_else(|| format!("{p} found nothing"))
        })
    }

    #[test]
    fn a_table_of_intrinsics() {
        let table: &[(&str, Value)] = &[
            (
                "States.Format('{} has {} items', $.name, $.n)",
                json!("Ada has 3 items"),
            ),
            ("States.Format('a \\{\\} b')", json!("a {} b")),
            ("States.StringToJson('{\"x\": 1}')", json!({"x": 1})),
            ("States.JsonToString($.o)", json!("{\"a\":1}")),
            (
                "States.Array(1, 'two', $.n, null, true)",
                json!([1, "two", 3, null, true]),
            ),
            ("States.ArrayPartition($.list, 3)", json!([[1, 2, 2], [3]])),
            ("States.ArrayContains($.list, 3)", json!(true)),
            ("States.ArrayRange(1, 9, 4)", json!([1, 5, 9])),
            ("States.ArrayGetItem($.list, 3)", json!(3)),
            ("States.ArrayLength($.list)", json!(4)),
            ("States.ArrayUnique($.list)", json!([1, 2, 3])),
            ("States.Base64Encode('Data')", json!("RGF0YQ==")),
            ("States.Base64Decode('RGF0YQ==')", json!("Data")),
            (
                "States.Hash('input', 'SHA-1')",
                json!("140f86aae51ab9e1cda9b4254fe98a74eb54c1a1"),
            ),
            (
                "States.Hash('input', 'MD5')",
                json!("a43c1b0aa53a0c908810c06ab1ff3967"),
            ),
            (
                "States.JsonMerge($.o, States.StringToJson('{\"b\": 2}'), false)",
                json!({"a": 1, "b": 2}),
            ),
            ("States.MathAdd($.n, -1)", json!(2)),
            ("States.StringSplit('a,b;;c', ',;')", json!(["a", "b", "c"])),
            ("States.ArrayLength(States.Array(States.UUID()))", json!(1)),
            ("States.ArrayLength($.list[?(@ > 1)])", json!(3)),
            ("States.Array($.list[0,3], 'x')", json!([[1, 3], "x"])),
        ];
        for (text, want) in table {
            assert_eq!(
                &run(text).unwrap_or_else(|e| panic!("{text}: {e}")),
                want,
                "{text}"
            );
        }
        let r = run("States.MathRandom(1, 3)").unwrap().as_i64().unwrap();
        assert!((1..3).contains(&r));
    }

    #[test]
    fn bad_calls_are_refused() {
        for text in [
            "States.Nope(1)",
            "States.UUID(1)",
            "States.Format('{}')",
            "States.Format('x', 1)",
            "States.ArrayGetItem($.list, 9)",
            "States.Hash('x', 'CRC')",
            "States.Array(1",
        ] {
            assert!(run(text).is_err(), "{text}");
        }
    }
}
