"""Cutting a file's records into pieces (transforms/chunks.py): the pieces hold every record
once, in order, and the parser reads each piece as the records it holds."""

from __future__ import annotations

import json

import pytest
from polars.testing import assert_frame_equal

from tests.conftest import T0, encode, order
from transforms import chunks
from transforms.parse import parse_array_items, parse_file


def _read(data: bytes) -> chunks.Read:
    return lambda start, end: data[start:end]


@pytest.mark.parametrize("shape", ["jsonl", "array", "wrapped"])
@pytest.mark.parametrize("chunk_bytes", [50, 333, 1000, 10**6])
def test_pieces_hold_every_record_once_in_order(shape: str, chunk_bytes: int) -> None:
    records = [order(i, T0) for i in range(1, 41)]
    data = b"\xef\xbb\xbf" + encode("sales_order", records, shape) + b"\n\n"
    layout = chunks.layout(data[:65536], data[-4096:], len(data))
    assert layout is not None
    assert layout.kind == ("lines" if shape == "jsonl" else "array")
    ids: list[int] = []
    pieces = list(chunks.pieces(_read(data), layout, chunk_bytes))
    for piece in pieces:
        assert data[piece.start : piece.end] == piece.body
        result = parse_file(piece.data, "sales_order", "k")
        assert result.rejects.is_empty()
        if piece.kind == "array":  # the inside alone parses the same, with no copy made first
            assert_frame_equal(parse_array_items(piece.body, "sales_order", "k").rows, result.rows)
        ids += result.rows["sales_order_id"].to_list()
    assert ids == list(range(1, 41))
    if chunk_bytes < 1000:
        assert len(pieces) > 5


def test_a_separator_inside_a_string_makes_a_piece_that_does_not_read() -> None:
    """A cut after `}, {` inside a string leaves a piece that ends inside the string: its parse
    is a whole-file reject (the caller joins it with the next piece), never wrong records."""
    inside = '}, {"sales_order_id": 999, "x": "'
    records = [{**order(i, T0), "note": inside * 3} for i in range(1, 6)]
    data = json.dumps(records).encode()
    layout = chunks.layout(data[:65536], data[-4096:], len(data))
    assert layout is not None
    read = _read(data)
    failures = 0
    for chunk_bytes in range(60, 1500, 13):
        ids: list[int] = []
        pending = None
        for each in chunks.pieces(read, layout, chunk_bytes):
            piece = chunks.joined(read, pending, each) if pending is not None else each
            result = parse_file(piece.data, "sales_order", "k")
            if (result.rejects["record_number"] == 0).any():
                failures += 1
                pending = piece
                continue
            pending = None
            assert result.rejects.is_empty()
            ids += result.rows["sales_order_id"].to_list()
        assert pending is None
        assert ids == [1, 2, 3, 4, 5], chunk_bytes
    assert failures  # some cut did fall inside a string


def test_line_numbers_in_reasons_are_shifted_to_the_file() -> None:
    assert chunks.shift_line_number("invalid JSON on line 3: Expecting value", 10) == (
        "invalid JSON on line 13: Expecting value"
    )
    assert chunks.shift_line_number("line 2 is not a JSON object: a number (5)", 4) == (
        "line 6 is not a JSON object: a number (5)"
    )


def test_layout_of_other_documents_is_none() -> None:
    for data in (b"  ", b'"text"', b"42", b"[1, 2"):
        assert chunks.layout(data, data, len(data)) is None
