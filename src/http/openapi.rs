//! Completes the OpenAPI document with the answers that come from the
//! gateway and the extractors rather than from a handler, so every route
//! declares every status it can really send (generated clients and
//! schemathesis hold the server to exactly that list).
//!
//! Derived from what each operation already declares: a security
//! requirement means `401` (a missing or invalid token), a JSON request
//! body means `400`, `413` and `415`, any body `408` (it stopped arriving);
//! every route can answer `414` and `431` (the request guard's limits),
//! `429` (rate limits, when on) and `503` (timeout, overload, storage
//! closed).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Type};

use super::error::PROBLEM_JSON;

/// Adds the gateway's and extractors' statuses to every operation of `doc`
/// that does not declare them already (a handler's own text wins).
pub fn complete(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let mut add = |status: &str, description: &str, retry_after: bool| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description, retry_after)));
    };
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add("401", "UNAUTHENTICATED: the bearer token is missing, unknown or expired (`WWW-Authenticate: Bearer`)", false);
    }
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    if json_body {
        add(
            "400",
            "MALFORMED_REQUEST: the body is not JSON, or a field has the wrong type",
            false,
        );
        add("413", "PAYLOAD_TOO_LARGE: the body is over 1 MiB", false);
        add(
            "415",
            "UNSUPPORTED_MEDIA_TYPE: the body is not sent as `application/json`",
            false,
        );
    }
    if operation.request_body.is_some() {
        add(
            "408",
            "REQUEST_TIMEOUT: the body stopped arriving for `body_read_timeout_secs`",
            false,
        );
    }
    add(
        "414",
        "URI_TOO_LONG: the request target is over 8 KiB",
        false,
    );
    add(
        "431",
        "HEADERS_TOO_LARGE: the request headers are over 16 KiB",
        false,
    );
    add(
        "429",
        "RATE_LIMITED: the caller's bucket is empty; retry after `Retry-After` seconds",
        true,
    );
    add(
        "503",
        "TIMEOUT, OVERLOADED or UNAVAILABLE: retry shortly",
        true,
    );
}

/// A problem+json response, with `Retry-After` when `retry_after`.
fn problem(description: &str, retry_after: bool) -> utoipa::openapi::Response {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    if retry_after {
        let seconds = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1));
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(seconds)
                .description(Some("seconds to wait before retrying"))
                .build(),
        );
    }
    response.build()
}
