"""Reading an input file line by line, one line held at a time."""

from tokenmill.batches.lines import TOO_LONG, raw_lines


def test_lines_keep_their_numbers_across_chunks_and_blank_lines(settings):
    chunks = [b'{"a"', b': 1}\n\n  \n{"b": 2}', b"\n", b'{"c": 3}']
    assert list(raw_lines(iter(chunks))) == [(1, b'{"a": 1}'), (4, b'{"b": 2}'), (5, b'{"c": 3}')]


def test_a_line_past_the_body_limit_is_skipped_unread_even_across_chunks(settings):
    settings.GATEWAY_MAX_BODY_BYTES = 10
    chunks = [b"short\n", b"x" * 8, b"x" * 8, b"x" * 8, b"\nafter\n", b"y" * 30]
    assert list(raw_lines(iter(chunks))) == [
        (1, b"short"),
        (2, TOO_LONG),
        (3, b"after"),
        (4, TOO_LONG),
    ]
