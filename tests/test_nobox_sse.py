from __future__ import annotations

from chat.nobox import SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def message(data: str, id: str | None = None) -> SSEEvent:
    return SSEEvent(event="message", data=data, id=id)


def test_it_decodes_lf_terminated_events():
    assert decode(b"data: one\n\ndata: two\n\n") == [message("one"), message("two")]


def test_it_decodes_crlf_terminated_events():
    assert decode(b"data: one\r\n\r\ndata: two\r\n\r\n") == [message("one"), message("two")]


def test_it_decodes_cr_terminated_events():
    assert decode(b"data: one\r\rdata: two\r\r") == [message("one"), message("two")]


def test_a_crlf_split_across_chunks_is_one_line_end():
    # Read as two line ends, the LF would be a blank line and dispatch "a" on its own.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [message("a\nb")]


def test_a_cr_at_a_chunk_end_still_ends_the_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [message("a")]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [message("b")]


def test_an_lf_is_not_swallowed_after_a_cr_separated_by_an_empty_chunk():
    assert decode(b"data: a\r", b"", b"\ndata: b\n\n") == [message("a\nb")]


def test_it_ignores_comment_lines():
    stream = b": keep-alive\n\ndata: x\n: in the middle\ndata: y\n\n"
    assert decode(stream) == [message("x\ny")]


def test_it_joins_multi_line_data_with_newlines():
    assert decode(b"data: line 1\ndata:\ndata: line 3\n\n") == [message("line 1\n\nline 3")]


def test_it_accepts_data_without_the_space_and_removes_only_one_space():
    assert decode(b"data:tight\n\ndata:  two spaces\n\n") == [
        message("tight"),
        message(" two spaces"),
    ]


def test_a_field_name_without_colon_has_an_empty_value():
    assert decode(b"data\n\n") == [message("")]


def test_it_reads_event_and_id_fields_and_keeps_the_last_id():
    stream = b"event: ping\nid: 7\ndata: a\n\ndata: b\n\n"
    assert decode(stream) == [
        SSEEvent(event="ping", data="a", id="7"),
        SSEEvent(event="message", data="b", id="7"),
    ]


def test_it_ignores_an_id_containing_nul():
    assert decode(b"id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\n") == [
        message("a", id="1"),
        message("b", id="1"),
    ]


def test_it_records_valid_retry_values_only():
    decoder = SSEDecoder()
    decoder.feed(b"retry: 1500\n\n")
    assert decoder.retry == 1500
    decoder.feed(b"retry: soon\n\nretry: 12.5\n\n")
    assert decoder.retry == 1500


def test_an_event_without_data_is_not_dispatched():
    assert decode(b"event: nothing\n\ndata: after\n\n") == [message("after")]


def test_a_multibyte_character_split_across_chunks_survives():
    text = "héllo 🙂 wörld"
    raw = f"data: {text}\n\n".encode()
    start = raw.index("🙂".encode())
    chunks = [raw[: start + 1], raw[start + 1 : start + 3], raw[start + 3 :]]
    assert decode(*chunks) == [message(text)]


def test_invalid_utf8_is_replaced_not_fatal():
    assert decode(b"data: a\xffb\n\n") == [message("a\ufffdb")]


def test_a_leading_bom_is_dropped_even_when_split():
    assert decode(b"\xef\xbb", b"\xbfdata: x\n\n") == [message("x")]


def test_only_the_leading_bom_is_dropped():
    assert decode("\ufeffdata: \ufeffx\n\n".encode()) == [message("\ufeffx")]


def test_close_dispatches_an_event_missing_only_its_blank_line():
    assert decode(b"data: [DONE]\n") == [message("[DONE]")]


def test_close_drops_an_unterminated_last_line():
    assert decode(b'data: ok\n\ndata: {"trunc') == [message("ok")]


def test_close_is_empty_after_a_complete_stream():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [message("a")]
    assert decoder.close() == []


# One stream with every hazard at once; splitting it anywhere must not change the result.
AWKWARD_STREAM = (
    b"\xef\xbb\xbf: comment\r\n"
    b"event: delta\r\nid: 1\r\ndata: h\xc3\xa9llo\r\ndata:w\xf0\x9f\x99\x82rld\r\n\r\n"
    b"data: cr only\r\r"
    b"data: mixed\ndata: ends\r\n\n"
    b"retry: 10\nid: 2\ndata: [DONE]\n\n"
)
AWKWARD_EVENTS = [
    SSEEvent(event="delta", data="héllo\nw🙂rld", id="1"),
    SSEEvent(event="message", data="cr only", id="1"),
    SSEEvent(event="message", data="mixed\nends", id="1"),
    SSEEvent(event="message", data="[DONE]", id="2"),
]


def test_the_awkward_stream_decodes_whole():
    assert decode(AWKWARD_STREAM) == AWKWARD_EVENTS


def test_the_awkward_stream_decodes_one_byte_at_a_time():
    chunks = [AWKWARD_STREAM[i : i + 1] for i in range(len(AWKWARD_STREAM))]
    assert decode(*chunks) == AWKWARD_EVENTS


def test_the_awkward_stream_decodes_split_at_every_offset():
    for offset in range(1, len(AWKWARD_STREAM)):
        events = decode(AWKWARD_STREAM[:offset], AWKWARD_STREAM[offset:])
        assert events == AWKWARD_EVENTS, f"split at byte {offset}"
