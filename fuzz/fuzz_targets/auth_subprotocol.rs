//! The `header-<base64url JSON>` WebSocket subprotocol (and `?header=`)
//! carrying a connection's auth headers: any text decodes to headers or a
//! reason, never a panic.
#![no_main]

use herald::auth::AuthHeaders;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(h) = AuthHeaders::from_base64_json(text) {
        let _ = h.get("authorization");
        let _ = h.get("x-api-key");
        let _ = h.get("host");
    }
});
