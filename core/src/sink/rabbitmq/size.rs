//! The broker's limit on a message's size (RabbitMQ's `max_message_size`: 16 MiB by default
//! since 4.0, 128 MiB before), learned from its refusal. AMQP does not announce the limit;
//! an oversize message makes the broker close the channel with `PRECONDITION_FAILED` and the
//! text "message size N is larger than configured max size M" (`rabbit_channel.erl`). Taken
//! for a passing failure, such an event was retried until its batch ran out of retries,
//! and every event behind it with it; it is too large instead, as HTTP's 413 is.

/// The limit a broker's channel-close text names, if it is the size refusal.
pub(super) fn refused_size(why: &str) -> Option<usize> {
    let rest = &why[why.find("larger than configured max size ")? + 32..];
    let digits = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    digits.parse().ok()
}

/// The first event of `batch` over `max` bytes.
pub(super) fn first_over(batch: &[&[u8]], max: usize) -> Option<usize> {
    batch.iter().position(|e| e.len() > max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_read_from_rabbitmqs_refusal() {
        let why = "connection lost: protocol error: AMQP soft error: PRECONDITION-FAILED: \
                   PRECONDITION_FAILED - message size 20079 is larger than configured max \
                   size 8192";
        assert_eq!(refused_size(why), Some(8192));
        assert_eq!(refused_size("connection lost: broken pipe"), None);
        assert_eq!(refused_size("larger than configured max size x"), None);
        assert_eq!(first_over(&[b"ab", b"abcd", b"abcdef"], 3), Some(1));
        assert_eq!(first_over(&[b"ab"], 3), None);
    }
}
