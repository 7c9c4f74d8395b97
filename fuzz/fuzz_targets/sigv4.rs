//! SigV4 verification: arbitrary `Authorization` and `X-Amz-Date` headers and
//! request parts are refused with a reason, never a panic; and a request
//! Herald signs itself (a path of plain segments, any body and headers) is
//! accepted, whatever else it carries.
#![no_main]

use herald::auth::sigv4::{sign, IamVerifier};
use herald::auth::{AuthHeaders, Signed};
use herald::config::IamCredential;
use libfuzzer_sys::{arbitrary, fuzz_target};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input<'a> {
    authorization: &'a str,
    amz_date: &'a str,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    body: &'a [u8],
    headers: Vec<(&'a str, &'a str)>,
}

const KEY: &str = "AKIDFUZZ";
const SECRET: &str = "fuzz-secret";

fn verifier() -> IamVerifier {
    let cred: IamCredential = serde_json::from_value(serde_json::json!({
        "access_key_id": KEY, "secret_access_key": SECRET,
        "principal": "arn:aws:iam::123456789012:user/fuzz",
        "allow": [{"actions": ["admin"]}]
    }))
    .expect("a credential");
    IamVerifier::new("us-east-1", &[cred], "")
}

fuzz_target!(|input: Input<'_>| {
    let verifier = verifier();
    // Whatever arrives.
    let mut h = AuthHeaders::default();
    h.insert_if_absent("authorization", input.authorization);
    h.insert_if_absent("x-amz-date", input.amz_date);
    for (k, v) in &input.headers {
        h.insert_if_absent(k, v);
    }
    let signed = Signed::Http {
        method: input.method,
        path: input.path,
        query: input.query,
        body: input.body,
    };
    let _ = verifier.authenticate(&h, &signed, &["appsync", "lambda"]);

    // What Herald signs, it accepts.
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_')
    };
    if !input.path.starts_with('/') || !plain(input.path) || input.path.contains("//") {
        return;
    }
    let extra: Vec<(String, String)> = input
        .headers
        .iter()
        .filter(|(k, v)| {
            !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !k.to_ascii_lowercase().starts_with("x-amz-")
                && !matches!(k.to_ascii_lowercase().as_str(), "host" | "authorization")
                && v.bytes().all(|b| (b' '..=b'~').contains(&b))
                && !v.contains("  ")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .take(4)
        .collect();
    let mut names = std::collections::HashSet::new();
    let mut to_sign: Vec<(&str, &str)> = vec![("host", "example.com")];
    for (k, v) in &extra {
        if names.insert(k.clone()) {
            to_sign.push((k, v));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let added = sign(
        KEY,
        SECRET,
        "us-east-1",
        "lambda",
        "POST",
        input.path,
        &to_sign,
        input.body,
        now,
    );
    let mut h = AuthHeaders::default();
    for (k, v) in added
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(to_sign.iter().copied())
    {
        h.insert_if_absent(k, v);
    }
    let signed = Signed::Http {
        method: "POST",
        path: input.path,
        query: "",
        body: input.body,
    };
    if let Err(e) = verifier.authenticate(&h, &signed, &["lambda"]) {
        panic!("a request Herald signed was refused: {e}");
    }
});
