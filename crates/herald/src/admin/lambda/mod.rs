//! Lambda's API (REST-JSON, `/2015-03-31/functions...`), with Lambda's
//! shapes, status codes and exceptions, over the server's functions: the
//! ones created here (kept in the store) and the configuration file's
//! (listed and invoked, changed in the file).

mod event_invoke;
mod functions;
mod invoke;
mod mappings;

use super::aws::{AwsError, Body};
use super::AdminState;
use hyper::{HeaderMap, Method, Response, StatusCode};

/// Route a REST request; `None` when no Lambda operation has this method and
/// path.
pub async fn route(
    state: &AdminState,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Result<Response<Body>, AwsError>> {
    let segments = super::aws::path_segments(path);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = method.clone();
    Some(match (seg.as_slice(), m) {
        (["2015-03-31", "functions"], Method::POST) => functions::create(state, body).await,
        (["2015-03-31", "functions"], Method::GET) => functions::list(state, query),
        (["2015-03-31", "functions", name], Method::GET) => functions::get(state, name).await,
        (["2015-03-31", "functions", name], Method::DELETE) => functions::delete(state, name).await,
        (["2015-03-31", "functions", name, "configuration"], Method::GET) => {
            functions::get_configuration(state, name)
        }
        (["2015-03-31", "functions", name, "configuration"], Method::PUT) => {
            functions::update_configuration(state, name, body).await
        }
        (["2015-03-31", "functions", name, "code"], Method::PUT) => {
            functions::update_code(state, name, body).await
        }
        (["2015-03-31", "functions", name, "versions"], Method::GET) => {
            functions::list_versions(state, name)
        }
        (["2015-03-31", "functions", name, "versions"], Method::POST) => {
            functions::publish_version(state, name)
        }
        (["2020-06-30", "functions", name, "code-signing-config"], Method::GET) => {
            functions::code_signing(state, name)
        }
        (["2015-03-31", "functions", name, "invocations"], Method::POST) => {
            invoke::invoke(state, name, headers, query, body).await
        }
        (["2017-10-31", "functions", name, "concurrency"], Method::PUT) => {
            functions::put_concurrency(state, name, body).await
        }
        (["2017-10-31", "functions", name, "concurrency"], Method::DELETE) => {
            functions::delete_concurrency(state, name).await
        }
        (["2019-09-30", "functions", name, "concurrency"], Method::GET) => {
            functions::get_concurrency(state, name)
        }
        (["2019-09-25", "functions", name, "event-invoke-config"], Method::PUT) => {
            event_invoke::put(state, name, body, false).await
        }
        (["2019-09-25", "functions", name, "event-invoke-config"], Method::POST) => {
            event_invoke::put(state, name, body, true).await
        }
        (["2019-09-25", "functions", name, "event-invoke-config"], Method::GET) => {
            event_invoke::get(state, name)
        }
        (["2019-09-25", "functions", name, "event-invoke-config"], Method::DELETE) => {
            event_invoke::delete(state, name).await
        }
        (["2019-09-25", "functions", name, "event-invoke-config", "list"], Method::GET) => {
            event_invoke::list(state, name)
        }
        (["2015-03-31", "event-source-mappings"], Method::POST) => {
            mappings::create(state, body).await
        }
        (["2015-03-31", "event-source-mappings"], Method::GET) => mappings::list(state, query),
        (["2015-03-31", "event-source-mappings", uuid], Method::GET) => mappings::get(state, uuid),
        (["2015-03-31", "event-source-mappings", uuid], Method::PUT) => {
            mappings::update(state, uuid, body).await
        }
        (["2015-03-31", "event-source-mappings", uuid], Method::DELETE) => {
            mappings::delete(state, uuid).await
        }
        _ => return None,
    })
}

/// Lambda's exceptions.
fn not_found(state: &AdminState, name: &str) -> AwsError {
    let arn = state
        .functions()
        .arn(crate::functions::Functions::name_of(name));
    AwsError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Function not found: {arn}"),
    )
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        message,
    )
}
