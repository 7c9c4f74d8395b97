//! I/O-free protocol core of Herald.
//!
//! Everything here is pure data and validation: the AppSync Events wire frames
//! ([`frame`], [`reply`]), channel paths and wildcard patterns ([`channel`]), the
//! limits AppSync enforces ([`limits`]), published-event validation ([`event`]),
//! error vocabulary ([`error`]), the subscription index used for fan-out
//! ([`index`]) and the server side of RFC 6455 framing ([`websocket`]). No
//! sockets, no async runtime: the server crate drives these types, and they are
//! tested directly.

pub mod channel;
pub mod error;
pub mod event;
pub mod frame;
pub mod index;
pub mod limits;
pub mod reply;
pub mod websocket;

pub use channel::{Channel, ChannelPattern};
pub use error::{ErrorType, OpError};
pub use limits::Limits;
