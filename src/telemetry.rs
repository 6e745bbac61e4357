//! Logging and metrics set-up, and the span each HTTP request is logged in.

use std::sync::OnceLock;

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Empty, Field, FieldSet, Value};
use tracing::span::Record;
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::fmt::{FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::{LookupSpan, Registry, SpanData};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Logs to stdout, or to stderr when stdout carries a command's output
/// (`agora events export`); `RUST_LOG` filters (default `info`, quieter
/// for sled).
pub fn init_tracing(to_stderr: bool) {
    if to_stderr {
        install(
            std::io::stderr,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
    } else {
        install(
            std::io::stdout,
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        );
    }
}

/// The fmt layer writing to `writer` (colours only on a terminal: log files
/// and collectors get plain text), above [`RequestFieldsLayer`], which must
/// see each event before it.
fn install<W>(writer: W, ansi: bool)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sled=warn,tantivy=warn"));
    let format = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = tracing_subscriber::registry()
        .with(RequestFieldsLayer)
        .with(format)
        .with(filter)
        .try_init();
}

/// What a request's span shows (`method`, `route`, `request_id`), kept as
/// values and formatted into the span only when something is logged inside
/// it. Formatting them when each span opens cost ~0.5 µs of a ~5 µs `GET
/// /items/{id}`, for log lines that most requests never write.
pub struct RequestFields {
    /// The request's method.
    pub method: Method,
    /// The matched route template (`None`: no route matched).
    pub route: Option<MatchedPath>,
    /// The request's `x-request-id`.
    pub request_id: Option<HeaderValue>,
}

/// Opens a request's span: `request{method=… route="…" request_id="…"}` on
/// every line logged inside it, as with the fields given at once.
pub fn request_span(fields: RequestFields) -> Span {
    let span = tracing::info_span!("request", method = Empty, route = Empty, request_id = Empty);
    let mut fields = Some(fields);
    let kept = span.with_subscriber(|(id, dispatch)| {
        let data = dispatch.downcast_ref::<Registry>()?.span_data(id)?;
        data.extensions_mut().insert(fields.take()?);
        Some(())
    });
    // Another subscriber than ours (or none): record them now.
    if let (None | Some(None), Some(fields)) = (kept, fields) {
        span.record("method", tracing::field::display(&fields.method));
        span.record("route", fields.route());
        span.record("request_id", fields.request_id());
    }
    span
}

impl RequestFields {
    fn route(&self) -> &str {
        self.route.as_ref().map_or("unmatched", MatchedPath::as_str)
    }

    fn request_id(&self) -> &str {
        self.request_id
            .as_ref()
            .and_then(|id| id.to_str().ok())
            .unwrap_or("")
    }
}

/// Formats a request span's [`RequestFields`] into it when the first event
/// inside it is logged. Sits below the fmt layer, which sees each event
/// after it.
struct RequestFieldsLayer;

impl<S> Layer<S> for RequestFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let mut extensions = span.extensions_mut();
            let Some(fields) = extensions.remove::<RequestFields>() else {
                continue;
            };
            if let Some(formatted) = extensions.get_mut::<FormattedFields<DefaultFields>>() {
                format_into(formatted, span.metadata().fields(), &fields);
            }
            return;
        }
    }
}

/// Appends `fields` to a span's formatted fields, as the fmt layer would
/// have when the span opened.
fn format_into(
    formatted: &mut FormattedFields<DefaultFields>,
    names: &FieldSet,
    fields: &RequestFields,
) {
    let (Some(method), Some(route), Some(request_id)) = (
        names.field("method"),
        names.field("route"),
        names.field("request_id"),
    ) else {
        return;
    };
    let method_value = tracing::field::display(&fields.method);
    let route_value = fields.route();
    let request_id_value = fields.request_id();
    let values: [(&Field, Option<&dyn Value>); 3] = [
        (&method, Some(&method_value)),
        (&route, Some(&route_value)),
        (&request_id, Some(&request_id_value)),
    ];
    let values = names.value_set(&values);
    let _ = DefaultFields::new().add_fields(formatted, &Record::new(&values));
}
/// Latency buckets, seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
///
/// The `metrics` facade has one global recorder per process, so this is a
/// once-only global rather than per-application state.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_jobs".into()),
                        &[1., 2., 4., 8., 16., 32., 64., 128., 256., 512.],
                    )
                })
                .expect("static, non-empty bucket lists")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test
            // harness); then metrics go there and /metrics renders ours empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
