"""Unit tests of the JSON-RPC envelope codecs in schemas.jsonrpc."""

from __future__ import annotations

import json

import msgspec
import pytest
from msgspec import UNSET, Raw

from schemas.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ErrorObject,
    Invalid,
    decode_message,
    encode_error,
    encode_notification,
    encode_request,
    encode_result,
)


def test_error_codes_are_the_json_rpc_ones() -> None:
    """The code constants are the values fixed by the JSON-RPC 2.0 specification."""
    assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR) == (
        -32700,
        -32600,
        -32601,
        -32602,
        -32603,
    )


@pytest.mark.parametrize(
    ("line", "code", "id"),
    [
        pytest.param(b'{"jsonrpc":"2.0","id":1,"method":"ping"', PARSE_ERROR, None, id="truncated JSON"),
        pytest.param(b"not json at all", PARSE_ERROR, None, id="garbage"),
        pytest.param(
            b'{"jsonrpc":"2.0","id":7,"method":"p\xff"}', PARSE_ERROR, None, id="invalid UTF-8 in a string"
        ),
        pytest.param(b"\xff\xfe\x00", PARSE_ERROR, None, id="binary"),
        pytest.param(b'"just a string"', INVALID_REQUEST, None, id="not an object"),
        pytest.param(b"42", INVALID_REQUEST, None, id="a number"),
        pytest.param(b'{"jsonrpc":"1.0","id":2,"method":"ping"}', INVALID_REQUEST, 2, id="jsonrpc 1.0"),
        pytest.param(b'{"jsonrpc":2.0,"id":2,"method":"ping"}', INVALID_REQUEST, 2, id="jsonrpc a number"),
        pytest.param(b'{"id":"a","method":"ping"}', INVALID_REQUEST, "a", id="jsonrpc missing"),
        pytest.param(
            b'{"jsonrpc":"2.0","id":3}', INVALID_REQUEST, 3, id="id without method, result or error"
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":4,"method":"ping","params":"x"}', INVALID_REQUEST, 4, id="params a string"
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":4,"method":"ping","params":5}', INVALID_REQUEST, 4, id="params a number"
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":4,"method":"ping","params":true}', INVALID_REQUEST, 4, id="params a bool"
        ),
        pytest.param(
            b'{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}', INVALID_PARAMS, 5, id="params an array"
        ),
        pytest.param(b'{"jsonrpc":"2.0","id":6,"method":5}', INVALID_REQUEST, 6, id="method a number"),
        pytest.param(b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', INVALID_REQUEST, None, id="float id"),
        pytest.param(
            b'{"jsonrpc":"2.0","id":10.0,"method":"ping"}', INVALID_REQUEST, None, id="integral float id"
        ),
        pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"ping"}', INVALID_REQUEST, None, id="bool id"),
        pytest.param(
            b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', INVALID_REQUEST, None, id="object id"
        ),
        pytest.param(b'{"jsonrpc":"2.0"}', INVALID_REQUEST, None, id="no method and no id"),
    ],
)
def test_invalid_requests_raise_with_code_and_id(line: bytes, code: int, id: int | str | None) -> None:
    """A bad request line raises Invalid with the specification's code, the readable id (typed) and respond=True."""
    with pytest.raises(Invalid) as err:
        decode_message(line)
    exc = err.value
    assert exc.code == code, exc.message
    assert exc.id == id and type(exc.id) is type(id)
    assert exc.respond is True
    assert isinstance(exc.message, str) and exc.message
    assert str(exc) == exc.message


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b'{"jsonrpc":"2.0","method":"n","params":"x"}', id="params a string"),
        pytest.param(b'{"jsonrpc":"2.0","method":"n","params":[1]}', id="params an array"),
        pytest.param(b'{"jsonrpc":"2.0","method":5}', id="method a number"),
        pytest.param(b'{"jsonrpc":2.0,"method":"n"}', id="jsonrpc a number"),
        pytest.param(b'{"jsonrpc":"1.0","method":"n"}', id="jsonrpc 1.0"),
    ],
)
def test_malformed_notifications_are_not_answered(line: bytes) -> None:
    """A malformed notification (no id) raises Invalid with respond=False, as the Invalid docstring promises."""
    with pytest.raises(Invalid) as err:
        decode_message(line)
    assert err.value.respond is False, f"{line!r} would be answered (code {err.value.code})"
    assert err.value.id is None


def test_malformed_response_is_not_answered() -> None:
    """A response whose error member is malformed raises Invalid with respond=False (never answer a response)."""
    with pytest.raises(Invalid) as err:
        decode_message(b'{"jsonrpc":"2.0","id":9,"error":{"code":"x"}}')
    assert err.value.respond is False
    assert err.value.code == INVALID_REQUEST


@pytest.mark.parametrize(("raw_id", "value"), [(b'"7"', "7"), (b"7", 7), (b"-3", -3), (b'""', ""), (b"0", 0)])
def test_ids_are_decoded_with_their_json_type(raw_id: bytes, value: int | str) -> None:
    """A request id keeps its JSON type: "7" stays a string and 7 an integer."""
    msg = decode_message(b'{"jsonrpc":"2.0","id":' + raw_id + b',"method":"ping"}')
    assert msg.id == value and type(msg.id) is type(value)


def test_invalid_request_echoes_a_string_id_as_a_string() -> None:
    """An invalid request with id "12" reports the id as the string "12", not the integer 12."""
    with pytest.raises(Invalid) as err:
        decode_message(b'{"jsonrpc":"1.0","id":"12","method":"ping"}')
    assert err.value.id == "12" and type(err.value.id) is str


def test_request_notification_and_response_shapes() -> None:
    """A request has method and id, a notification only a method, a response only an id and result."""
    req = decode_message(b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c"}}')
    assert req.method == "tools/list" and req.id == 1
    assert bytes(req.params) == b'{"cursor":"c"}'  # type: ignore[arg-type]
    note = decode_message(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert note.method == "notifications/initialized" and note.id is UNSET and note.params is UNSET
    resp = decode_message(b'{"jsonrpc":"2.0","id":"s","result":{"ok":true}}')
    assert resp.method is UNSET and resp.id == "s" and bytes(resp.result) == b'{"ok":true}'  # type: ignore[arg-type]


def test_null_params_are_treated_as_absent() -> None:
    """params: null decodes as if params were missing."""
    msg = decode_message(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":null}')
    assert msg.params is UNSET


def test_unknown_members_are_ignored() -> None:
    """Unknown top-level members do not make a message invalid."""
    msg = decode_message(b'{"jsonrpc":"2.0","id":1,"method":"ping","extra":[1,2,3]}')
    assert msg.method == "ping"


def test_params_pass_through_byte_for_byte() -> None:
    """Params stay Raw: the original bytes (spacing, key order) come through untouched."""
    params = b'{ "b" : 1,  "a":[ 2 ] }'
    msg = decode_message(b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + params + b"}")
    assert bytes(msg.params) == params  # type: ignore[arg-type]


@pytest.mark.parametrize("id", [7, "7", 0, -1, ""])
def test_encode_result_round_trips(id: int | str) -> None:
    """encode_result then decode_message gives back the id (same JSON type) and the raw result bytes."""
    line = encode_result(id, Raw(b'{"content":[],"x":1}'))
    assert b"\n" not in line
    msg = decode_message(line)
    assert msg.id == id and type(msg.id) is type(id)
    assert bytes(msg.result) == b'{"content":[],"x":1}'  # type: ignore[arg-type]
    assert msg.error is UNSET and msg.method is UNSET
    assert json.loads(line) == {"jsonrpc": "2.0", "id": id, "result": {"content": [], "x": 1}}


@pytest.mark.parametrize("id", [7, "7"])
def test_encode_error_round_trips(id: int | str) -> None:
    """encode_error then decode_message gives back the id, code, message and data."""
    line = encode_error(id, INVALID_PARAMS, "bad cursor", {"hint": "list again"})
    msg = decode_message(line)
    assert msg.id == id and type(msg.id) is type(id)
    assert msg.error == ErrorObject(code=INVALID_PARAMS, message="bad cursor", data={"hint": "list again"})
    assert msg.result is UNSET


def test_encode_error_without_data_omits_it() -> None:
    """An error without data has no data member on the wire."""
    assert json.loads(encode_error(3, METHOD_NOT_FOUND, "Method not found: x")) == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": -32601, "message": "Method not found: x"},
    }


def test_encode_error_with_null_id_is_valid_json_rpc() -> None:
    """An error for an unreadable request carries "id": null on the wire."""
    assert json.loads(encode_error(None, PARSE_ERROR, "bad")) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "bad"},
    }


def test_error_response_with_null_id_decodes_as_a_response() -> None:
    """The bridge's own id-null error line decodes as a response, so receiving one is never answered."""
    line = encode_error(None, PARSE_ERROR, "the line is not valid JSON")
    try:
        msg = decode_message(line)
    except Invalid as exc:
        assert exc.respond is False, (
            f"an error response with id null would be answered with {exc.code}: {exc.message}"
        )
    else:
        assert msg.method is UNSET
        assert msg.error == ErrorObject(code=PARSE_ERROR, message="the line is not valid JSON")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            encode_notification("notifications/tools/list_changed"),
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
            id="notification",
        ),
        pytest.param(
            encode_notification("n", Raw(b'{"a":1}')),
            {"jsonrpc": "2.0", "method": "n", "params": {"a": 1}},
            id="notification with params",
        ),
        pytest.param(
            encode_request("r1", "tools/call", Raw(b'{"name":"t"}')),
            {"jsonrpc": "2.0", "id": "r1", "method": "tools/call", "params": {"name": "t"}},
            id="request",
        ),
    ],
)
def test_encoded_notifications_and_requests_carry_jsonrpc_2_0(
    line: bytes, expected: dict[str, object]
) -> None:
    """encode_notification / encode_request put "jsonrpc":"2.0" on the wire, so decode_message accepts them back."""
    assert msgspec.json.decode(line) == expected
    msg = decode_message(line)
    assert msg.method == expected["method"]
