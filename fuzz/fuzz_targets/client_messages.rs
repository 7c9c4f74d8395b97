//! AppSync client messages (the JSON text of a WebSocket text frame), as the
//! connection reads them: any text is a frame or an error frame, never a
//! panic; a message that parsed has an id the protocol allows.
#![no_main]

use herald_core::frame::{parse_client_frame, valid_id, ClientFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(frame) = parse_client_frame(text) {
        match &frame {
            ClientFrame::ConnectionInit => {}
            ClientFrame::Subscribe { id, .. }
            | ClientFrame::Unsubscribe { id }
            | ClientFrame::Publish { id, .. }
            | ClientFrame::History { id, .. } => assert!(valid_id(id), "accepted id {id:?}"),
        }
        if let ClientFrame::Publish { events, .. } = frame {
            let limits = herald_core::limits::Limits::default();
            if let Ok(texts) = herald_core::event::validate_events(events, &limits) {
                assert!(!texts.is_empty(), "a publish of no events was accepted");
            }
        }
    }
});
