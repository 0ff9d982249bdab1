//! Headers TaskFlow adds to the messages it re-publishes: the attempt, the errors met so far,
//! and (in the dead-letter queue) why the message ended there.

use lapin::types::{AMQPValue, FieldArray, FieldTable};

pub const ATTEMPT: &str = "x-taskflow-attempt";
pub const ERRORS: &str = "x-taskflow-errors";
pub const REASON: &str = "x-taskflow-reason";
/// The task's attempt (its number on the row) that this message was published to follow.
pub const SUPERSEDES: &str = "x-taskflow-supersedes";
/// The attempt history kept with a message is capped, so a long retry chain stays small.
const MAX_ERRORS: usize = 20;

/// The attempt a delivery is (1 when the header is absent, as for a first publish).
pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    let value = headers.and_then(|h| h.inner().get(ATTEMPT));
    let number = match value {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        Some(AMQPValue::LongUInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortUInt(n)) => i64::from(*n),
        _ => 1,
    };
    u32::try_from(number.max(1)).unwrap_or(1)
}

/// Set on a retry whose delivery failed to start its task, not knowing whether the start
/// took effect: like a broker's redelivery, it may take over the attempt it finds.
pub const REDELIVERY: &str = "x-taskflow-redelivery";

/// Whether a message is a [`REDELIVERY`].
pub fn is_redelivery(headers: Option<&FieldTable>) -> bool {
    matches!(
        headers.and_then(|h| h.inner().get(REDELIVERY)),
        Some(AMQPValue::Boolean(true))
    )
}

/// `table` marked as a [`REDELIVERY`].
pub fn redelivery(mut table: FieldTable) -> FieldTable {
    table.insert(REDELIVERY.into(), AMQPValue::Boolean(true));
    table
}

/// The attempt a message was published to follow, if it says.
pub fn supersedes(headers: Option<&FieldTable>) -> Option<u32> {
    match headers?.inner().get(SUPERSEDES)? {
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(*n),
        _ => None,
    }
}

/// `table` with the attempt the message follows.
pub fn superseding(mut table: FieldTable, attempt: u32) -> FieldTable {
    table.insert(
        SUPERSEDES.into(),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    table
}

/// Why a dead letter is in the dead-letter queue.
pub fn reason(headers: Option<&FieldTable>) -> Option<String> {
    match headers?.inner().get(REASON)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        _ => None,
    }
}

/// The errors recorded by earlier attempts.
pub fn errors(headers: Option<&FieldTable>) -> Vec<String> {
    match headers.and_then(|h| h.inner().get(ERRORS)) {
        Some(AMQPValue::FieldArray(array)) => array
            .as_slice()
            .iter()
            .filter_map(|value| match value {
                AMQPValue::LongString(text) => {
                    Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Headers for attempt `attempt` after `errors`, with `reason` for a dead letter.
pub fn build(attempt: u32, errors: &[String], reason: Option<&str>) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(attempt)));
    let start = errors.len().saturating_sub(MAX_ERRORS);
    let list: Vec<AMQPValue> = errors[start..]
        .iter()
        .map(|error| AMQPValue::LongString(error.as_str().into()))
        .collect();
    table.insert(ERRORS.into(), AMQPValue::FieldArray(FieldArray::from(list)));
    if let Some(reason) = reason {
        table.insert(REASON.into(), AMQPValue::LongString(reason.into()));
    }
    table
}
