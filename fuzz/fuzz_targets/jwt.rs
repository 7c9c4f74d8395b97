//! JWT parsing (the compact JWS a Cognito or OIDC token arrives as): any text
//! is a token split and decoded, or refused; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(p) = herald::auth::jwt::parse(text) {
        assert!(p.claims.is_object());
        let _ = (&p.alg, &p.kid);
    }
});
