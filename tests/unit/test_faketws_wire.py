from __future__ import annotations

import socket
import struct
from decimal import Decimal

import pytest

from ibkrfw.testing.faketws.wire import (
    MAX_PAYLOAD,
    FrameReader,
    WireError,
    encode_fields,
    frame,
    is_unset,
    parse_version_range,
    split_fields,
)


def test_fields_are_nul_terminated_text() -> None:
    payload = encode_fields(
        [4, 2, -1, 2104, "farm OK", True, False, None, 1.5, 100.0, Decimal("0.10")]
    )
    assert payload == b"4\x002\x00-1\x002104\x00farm OK\x001\x000\x00\x001.5\x00100.0\x000.10\x00"
    assert split_fields(payload) == [
        "4",
        "2",
        "-1",
        "2104",
        "farm OK",
        "1",
        "0",
        "",
        "1.5",
        "100.0",
        "0.10",
    ]
    assert encode_fields([float("inf"), 1e-05]) == b"Infinity\x001e-05\x00"
    assert encode_fields(["caf\u00e9"]) == b"caf\\xe9\x00"  # ASCII only on the wire


def test_frames_carry_a_big_endian_length() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    with pytest.raises(WireError, match="over the"):
        frame(b"x" * (MAX_PAYLOAD + 1))


def test_the_reader_reassembles_frames_however_tcp_splits_them() -> None:
    left, right = socket.socketpair()
    with left, right:
        data = frame(b"one\x00") + frame(b"two\x00")
        for i in range(len(data)):  # one byte at a time
            left.sendall(data[i : i + 1])
        left.close()
        reader = FrameReader(right)
        assert reader.read_frame() == b"one\x00"
        assert reader.read_frame() == b"two\x00"
        assert reader.read_frame() is None


def test_an_oversized_frame_is_refused() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(struct.pack("!I", MAX_PAYLOAD + 1))
        with pytest.raises(WireError, match="announces"):
            FrameReader(right).read_frame()


def test_handshake_ranges_and_unset_values() -> None:
    assert parse_version_range("v100..157") == (100, 157, "")
    assert parse_version_range("v157..178 +PACEAPI") == (157, 178, "+PACEAPI")
    with pytest.raises(WireError, match="not a TWS API handshake"):
        parse_version_range("hello")
    for text in ("", "1.7976931348623157E308", "1.7976931348623157e+308", "2147483647"):
        assert is_unset(text)
    assert not is_unset("0")


def test_outgoing_messages_have_the_exact_field_counts_of_v157() -> None:
    from ibkrfw import OrderRequest, Side, Stock
    from ibkrfw.testing.faketws import messages as m

    acme = Stock("ACME")
    request = OrderRequest.limit(acme, "BUY", 10, "99.50")
    counts = {
        "contractDetails": len(m.contract_details(1, acme, 100001)),
        "openOrder": len(
            m.open_order(
                1, acme, 100001, request, client_id=1, perm_id=1, account="DU1", status="Submitted"
            )
        ),
        "orderStatus": len(
            m.order_status(1, "Submitted", Decimal(0), Decimal(10), 0.0, 1, 0, 0.0, 1)
        ),
        "execDetails": len(
            m.exec_details(
                -1,
                1,
                acme,
                100001,
                exec_id="e",
                time_text="t",
                account="DU1",
                side=Side.BUY,
                shares=Decimal(10),
                price=Decimal("99.5"),
                perm_id=1,
                client_id=1,
                cum_qty=Decimal(10),
                avg_price=99.5,
                order_ref="",
            )
        ),
        "commissionReport": len(m.commission_report("e", Decimal("1.00"), "USD", None)),
        "position": len(m.position("DU1", acme, 100001, Decimal(10), 99.5)),
        "accountSummary": len(m.account_summary(1, "DU1", "NetLiquidation", "1", "USD")),
        "tickPrice": len(m.tick_price(1, 4, 99.5, 100)),
        "tickSize": len(m.tick_size(1, 8, 100)),
    }
    assert counts == {
        "contractDetails": 39,
        "openOrder": 120,
        "orderStatus": 12,
        "execDetails": 31,
        "commissionReport": 8,
        "position": 16,
        "accountSummary": 7,
        "tickPrice": 7,
        "tickSize": 5,
    }
