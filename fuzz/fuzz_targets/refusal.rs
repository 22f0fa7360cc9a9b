//! The check the parsing targets share: a refusal is a client error whose reason is one of
//! the parser's fixed ones, so it can never echo the input back.

use kafka_sse::Error;

/// Asserts that `error` is a 400 with one of `reasons` as its detail.
pub fn assert_fixed_refusal(error: &Error, reasons: &[String]) {
    assert_eq!(error.status_code(), 400, "{error:?}");
    let detail = error.problem().detail;
    assert!(
        reasons.contains(&detail),
        "a reason outside the fixed ones, which may echo the input: {detail}"
    );
}
