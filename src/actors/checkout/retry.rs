//! The retry every participant call of the saga goes through: a few
//! attempts with backoff, for failures worth retrying (an actor busy or
//! slow, see [`CheckoutError::is_retryable`]).

use std::future::Future;
use std::time::Duration;

use super::CheckoutError;

/// Attempts after the first one.
const RETRIES: u32 = 3;
/// The first pause; each next one is four times longer (20, 80, 320 ms).
const FIRST_PAUSE: Duration = Duration::from_millis(20);

/// Runs `call` until it succeeds, fails in a way not worth retrying, or has
/// been retried [`RETRIES`] times; returns its last answer unchanged (the
/// caller still matches on the participant's own error).
pub(super) async fn retrying<T, E, F, Fut>(mut call: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Clone,
    CheckoutError: From<E>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt < RETRIES && CheckoutError::from(e.clone()).is_retryable() => {
                attempt += 1;
                tokio::time::sleep(pause).await;
                pause *= 4;
            }
            other => return other,
        }
    }
}
