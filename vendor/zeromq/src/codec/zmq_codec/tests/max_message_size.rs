use super::*;

const LIMIT: usize = 1 << 20;

fn codec_with_limit(limit: Option<usize>) -> ZmqCodec {
    let mut options = SocketOptions::default();
    if let Some(limit) = limit {
        options.max_message_size(limit);
    }
    let mut codec = ZmqCodec::with_options(&options);
    codec.state = DecoderState::FrameHeader;
    codec.waiting_for = 1;
    codec
}

fn frame(more: bool, body: &[u8]) -> Vec<u8> {
    let more = u8::from(more);
    let mut wire = if body.len() > 255 {
        let mut header = vec![0b0000_0010 | more];
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header
    } else {
        vec![more, body.len() as u8]
    };
    wire.extend_from_slice(body);
    wire
}

fn decode_all(codec: &mut ZmqCodec, input: &mut BytesMut) -> Result<Vec<ZmqMessage>, CodecError> {
    let mut messages = Vec::new();
    while let Some(message) = codec.decode(input)? {
        let Message::Message(message) = message else {
            panic!("expected a message");
        };
        messages.push(message);
    }
    Ok(messages)
}

#[test]
fn frame_header_announcing_2_pow_44_bytes_is_refused_before_reserving() {
    let mut codec = codec_with_limit(Some(LIMIT));
    // The header from the report: a long frame of 2^44 bytes.
    let mut input = BytesMut::from(&[0x02, 0, 0, 0x10, 0, 0, 0, 0, 0][..]);
    match codec.decode(&mut input) {
        Err(CodecError::MessageTooLarge { size, limit }) => {
            assert_eq!(size, 1 << 44);
            assert_eq!(limit, LIMIT);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(input.capacity() < 4096, "reserved {}", input.capacity());
}

#[test]
fn frame_one_byte_over_the_limit_is_refused_and_one_at_the_limit_accepted() {
    let mut codec = codec_with_limit(Some(1000));
    let mut input = BytesMut::from(&frame(false, &[7; 1000])[..]);
    let messages = decode_all(&mut codec, &mut input).unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].get(0).unwrap().len(), 1000);

    let mut codec = codec_with_limit(Some(1000));
    let mut input = BytesMut::from(&frame(false, &[7; 1001])[..9]);
    assert!(matches!(
        codec.decode(&mut input),
        Err(CodecError::MessageTooLarge {
            size: 1001,
            limit: 1000
        })
    ));
}

#[test]
fn short_frames_are_checked_too() {
    let mut codec = codec_with_limit(Some(100));
    let mut input = BytesMut::from(&[0, 200][..]);
    assert!(matches!(
        codec.decode(&mut input),
        Err(CodecError::MessageTooLarge {
            size: 200,
            limit: 100
        })
    ));
}

#[test]
fn multipart_message_is_refused_when_buffered_plus_announced_exceeds_the_limit() {
    let mut codec = codec_with_limit(Some(LIMIT));
    let mut wire = frame(true, &vec![1; LIMIT / 2]);
    wire.extend_from_slice(&frame(true, &vec![2; LIMIT / 2]));
    // Header only: the third frame is refused on its announced length.
    wire.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut input = BytesMut::from(&wire[..]);
    match decode_all(&mut codec, &mut input) {
        Err(CodecError::MessageTooLarge { size, limit }) => {
            assert_eq!(size, LIMIT + 1);
            assert_eq!(limit, LIMIT);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    // Nothing was reserved beyond the bytes already received.
    assert!(
        input.capacity() <= wire.len(),
        "reserved {}",
        input.capacity()
    );
}

#[test]
fn multipart_message_at_the_limit_is_accepted_and_the_next_message_starts_afresh() {
    let mut codec = codec_with_limit(Some(1000));
    let mut wire = frame(true, &[1; 600]);
    wire.extend_from_slice(&frame(false, &[2; 400]));
    wire.extend_from_slice(&frame(true, &[3; 500]));
    wire.extend_from_slice(&frame(false, &[4; 500]));
    let mut input = BytesMut::from(&wire[..]);
    let messages = decode_all(&mut codec, &mut input).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].len(), 2);
    assert_eq!(messages[1].len(), 2);
    assert!(input.is_empty());
}

#[test]
fn message_of_many_empty_frames_is_bounded_by_the_limit() {
    // 320 bytes allow 10 frames of 32-byte handles.
    let mut codec = codec_with_limit(Some(320));
    let mut wire = [1, 0].repeat(9);
    wire.extend_from_slice(&[0, 0]);
    let mut input = BytesMut::from(&wire[..]);
    assert_eq!(decode_all(&mut codec, &mut input).unwrap()[0].len(), 10);

    let mut input = BytesMut::from(&[1, 0].repeat(11)[..]);
    assert!(matches!(
        decode_all(&mut codec, &mut input),
        Err(CodecError::TooManyFrames { limit: 10 })
    ));
}

#[test]
fn command_frames_are_limited_even_without_a_message_limit() {
    let mut codec = codec_with_limit(None);
    let mut input = BytesMut::from(&[0x06, 0, 0, 0x10, 0, 0, 0, 0, 0][..]);
    match codec.decode(&mut input) {
        Err(CodecError::CommandTooLarge { size, limit }) => {
            assert_eq!(size, 1 << 44);
            assert_eq!(limit, MAX_COMMAND_SIZE);
        }
        other => panic!("expected CommandTooLarge, got {other:?}"),
    }
    assert!(input.capacity() < 4096, "reserved {}", input.capacity());
}

#[test]
fn command_frames_do_not_count_toward_the_message_limit() {
    let mut codec = codec_with_limit(Some(16));
    let mut input: BytesMut = ZmqCommand::ready(crate::SocketType::ROUTER).into();
    assert!(input.len() > 16);
    assert!(matches!(
        codec.decode(&mut input),
        Ok(Some(Message::Command(_)))
    ));
}

#[test]
fn without_a_limit_large_frames_decode_as_before() {
    let mut codec = codec_with_limit(None);
    let mut input = BytesMut::from(&frame(false, &vec![5; 3 * LIMIT])[..]);
    let messages = decode_all(&mut codec, &mut input).unwrap();
    assert_eq!(messages[0].get(0).unwrap().len(), 3 * LIMIT);
}
