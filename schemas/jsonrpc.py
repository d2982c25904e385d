"""JSON-RPC 2.0 envelope: typed codecs for the lines the bridge reads and writes.

Pure data, no I/O. Ids are strings or integers and are echoed with their JSON type.
Params and results the bridge only forwards stay `msgspec.Raw`, so they are never
re-encoded on the way through.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

# Standard JSON-RPC codes (https://www.jsonrpc.org/specification#error_object), defined in errors.py.
from .errors import INTERNAL_ERROR as INTERNAL_ERROR
from .errors import INVALID_PARAMS as INVALID_PARAMS
from .errors import INVALID_REQUEST as INVALID_REQUEST
from .errors import METHOD_NOT_FOUND as METHOD_NOT_FOUND
from .errors import PARSE_ERROR as PARSE_ERROR

RequestId = int | str


class ErrorObject(Struct, kw_only=True, omit_defaults=True):
    """The `error` member of a response."""

    code: int
    message: str
    data: Any = UNSET


class Message(Struct, kw_only=True, omit_defaults=True):
    """Any single JSON-RPC message, decoded leniently (unknown members are ignored).

    `method` set and `id` set: a request; `method` set, no `id`: a notification;
    no `method`: a response to a request we sent (`result` or `error`).
    """

    jsonrpc: str
    id: RequestId | None | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: Raw | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: ErrorObject | UnsetType = UNSET


class Response(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId
    result: Raw


class ErrorResponse(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId | None
    error: ErrorObject


class Notification(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    method: str
    params: Raw | UnsetType = UNSET


class Request(Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId
    method: str
    params: Raw | UnsetType = UNSET


class Invalid(Exception):
    """Raised when a line is not a valid JSON-RPC message; carries the error to send back.

    `id` is the request id when it could be read (else None); `respond` is False for
    a malformed notification, which the specification says to ignore.
    """

    def __init__(self, code: int, message: str, id: RequestId | None = None, respond: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.respond = respond


_message_decoder: Final = msgspec.json.Decoder(Message)
_any_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()


def decode_message(data: bytes | memoryview) -> Message:
    """Decode one JSON-RPC message (not a batch); raise `Invalid` naming what is wrong."""
    try:
        msg = _message_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return _diagnose(data)
    is_response = msg.method is UNSET and (msg.result is not UNSET or msg.error is not UNSET)
    if msg.jsonrpc != "2.0":
        raise Invalid(
            INVALID_REQUEST,
            'jsonrpc must be exactly "2.0"',
            _id_or_none(msg.id),
            respond=msg.id is not UNSET and not is_response,
        )
    if msg.method is UNSET:
        if not is_response:
            raise Invalid(INVALID_REQUEST, "a request needs a method", _id_or_none(msg.id))
        return msg  # a response (its id may be null when the peer could not read ours)
    if msg.id is None:
        raise Invalid(INVALID_REQUEST, "id must be a string or an integer, not null")
    if msg.params is not UNSET:
        _check_params(msg.params, msg)
    return msg


def _id_or_none(value: RequestId | None | UnsetType) -> RequestId | None:
    return None if value is UNSET else value


def _check_params(params: Raw, msg: Message) -> None:
    first = memoryview(params)[:1].tobytes()
    if first == b"{":
        return
    is_request = msg.id is not UNSET
    if first == b"[":
        raise Invalid(INVALID_PARAMS, "params must be a JSON object", _id_or_none(msg.id), respond=is_request)
    if len(params) == 4 and bytes(params) == b"null":
        msg.params = UNSET  # null params are the same as none
        return
    raise Invalid(INVALID_REQUEST, "params must be a JSON object", _id_or_none(msg.id), respond=is_request)


def _diagnose(data: bytes | memoryview) -> Message:
    """Slow path: find the precise error (and the id to answer with) for a line the typed decoder refused."""
    try:
        value = _any_decoder.decode(data)
    except UnicodeDecodeError:
        raise Invalid(PARSE_ERROR, "the line is not valid UTF-8") from None
    except msgspec.DecodeError as exc:
        raise Invalid(PARSE_ERROR, f"the line is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise Invalid(INVALID_REQUEST, "a JSON-RPC message must be a JSON object")
    raw_id = value.get("id")
    good_id = raw_id if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    if "method" not in value and ("result" in value or "error" in value):
        raise Invalid(
            INVALID_REQUEST, "malformed response", good_id, respond=False
        )  # never answer a response
    is_request = "id" in value
    if "id" in value and good_id is None:
        raise Invalid(INVALID_REQUEST, "id must be a string or an integer")
    if value.get("jsonrpc") != "2.0":
        raise Invalid(INVALID_REQUEST, 'jsonrpc must be exactly "2.0"', good_id, respond=is_request)
    if "method" in value and not isinstance(value["method"], str):
        raise Invalid(INVALID_REQUEST, "method must be a string", good_id, respond=is_request)
    if "error" in value:
        raise Invalid(
            INVALID_REQUEST,
            "error must be an object with an integer code and a message",
            good_id,
            respond=False,
        )
    raise Invalid(
        INVALID_REQUEST, "the message does not have the shape of JSON-RPC 2.0", good_id, respond=is_request
    )


def encode_result(id: RequestId, result: Raw) -> bytes:
    """One response line body (no newline) carrying an already-encoded result."""
    return _encoder.encode(Response(id=id, result=result))


def encode_error(id: RequestId | None, code: int, message: str, data: Any = UNSET) -> bytes:
    return _encoder.encode(ErrorResponse(id=id, error=ErrorObject(code=code, message=message, data=data)))


def encode_notification(method: str, params: Raw | UnsetType = UNSET) -> bytes:
    return _encoder.encode(Notification(method=method, params=params))


def encode_request(id: RequestId, method: str, params: Raw | UnsetType = UNSET) -> bytes:
    return _encoder.encode(Request(id=id, method=method, params=params))


def raw(value: Any) -> Raw:
    """Encode a Python value once, for embedding as a pass-through member."""
    return Raw(_encoder.encode(value))
