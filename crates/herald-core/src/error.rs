//! The error vocabulary shared by HTTP responses and WebSocket error frames.
//!
//! AppSync documents only a few `errorType` strings (`UnauthorizedException`,
//! `BadRequestException`, `UnknownOperationError`, ...). For the cases it leaves
//! undocumented (limits, duplicate ids, unknown message types) Herald uses the names
//! AppSync's GraphQL real-time endpoint uses; `docs/protocol.md` lists every choice.

use std::fmt;

/// The fixed text AppSync returns for every authorization failure. Clients are
/// told nothing more; the reason goes to the server log.
pub const UNAUTHORIZED_MESSAGE: &str = "You are not authorized to make this call.";

/// An `errorType` as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Malformed request: bad JSON, bad channel, bad events, unknown namespace.
    BadRequest,
    /// Authorization failed (fixed message).
    Unauthorized,
    /// A request or message larger than the transport accepts.
    PayloadTooLarge,
    /// Publish rate limit hit.
    TooManyRequests,
    /// More subscriptions than a connection may hold.
    MaxSubscriptionsReached,
    /// A subscription id already in use on this connection.
    DuplicatedOperation,
    /// Unsubscribe for an id that is not subscribed.
    UnknownOperation,
    /// A message type (or frame kind) the protocol does not have.
    UnsupportedOperation,
    /// A handler rejected the request with `util.error`.
    Forbidden,
    /// An `onSubscribe` handler called `util.unauthorized()` (AppSync's `Unauthorized`).
    SubscriptionUnauthorized,
    /// The server failed (or a handler failed).
    InternalFailure,
    /// The distribution engine is unreachable: other nodes were not reached.
    ServiceUnavailable,
}

impl ErrorType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadRequest => "BadRequestException",
            ErrorType::Unauthorized => "UnauthorizedException",
            ErrorType::PayloadTooLarge => "PayloadTooLargeException",
            ErrorType::TooManyRequests => "TooManyRequestsException",
            ErrorType::MaxSubscriptionsReached => "MaxSubscriptionsReachedError",
            ErrorType::DuplicatedOperation => "DuplicatedOperationError",
            ErrorType::UnknownOperation => "UnknownOperationError",
            ErrorType::UnsupportedOperation => "UnsupportedOperation",
            ErrorType::Forbidden => "ForbiddenException",
            ErrorType::SubscriptionUnauthorized => "Unauthorized",
            ErrorType::InternalFailure => "InternalFailureException",
            ErrorType::ServiceUnavailable => "ServiceUnavailableException",
        }
    }

    /// The HTTP status for this error on `POST /event`, also sent as `errorCode`
    /// in WebSocket error entries.
    pub fn status(self) -> u16 {
        match self {
            ErrorType::BadRequest
            | ErrorType::MaxSubscriptionsReached
            | ErrorType::DuplicatedOperation
            | ErrorType::UnknownOperation
            | ErrorType::UnsupportedOperation => 400,
            ErrorType::Unauthorized | ErrorType::SubscriptionUnauthorized => 401,
            ErrorType::Forbidden => 403,
            ErrorType::PayloadTooLarge => 413,
            ErrorType::TooManyRequests => 429,
            ErrorType::InternalFailure => 500,
            ErrorType::ServiceUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed operation: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub kind: ErrorType,
    pub message: String,
}

impl OpError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        OpError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadRequest, message)
    }

    /// The fixed-text authorization failure.
    pub fn unauthorized() -> Self {
        Self::new(ErrorType::Unauthorized, UNAUTHORIZED_MESSAGE)
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for OpError {}
