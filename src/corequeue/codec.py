"""Codecs turn payloads into bytes and back into the listener's declared class.

The default `JsonCodec` (msgspec) round-trips dataclasses, msgspec Structs, pydantic models,
TypedDicts, dicts, lists, primitives, datetime, UUID and Enum. `PickleCodec` exists only as an
explicit opt-in for trusted stores: unpickling runs code.
"""

from __future__ import annotations

import enum
import math
import pickle
import re
from collections.abc import Callable
from typing import Any, Protocol, cast, is_typeddict, runtime_checkable

import msgspec

from corequeue.errors import DecodeError, EncodeError


@runtime_checkable
class Codec(Protocol):
    """Turns payloads into bytes and back."""

    def encode(self, value: Any) -> bytes:
        """Return the bytes of `value`; raise EncodeError (a TypeError) if it cannot."""
        ...

    def decode(self, raw: bytes, into: type[Any] | None = None) -> Any:
        """Return the payload in `raw`, as an instance of `into` when given; raise DecodeError."""
        ...


MAX_DEPTH = 256
"""The deepest nesting of lists and objects a JSON payload may have (`[[1]]` has depth 2).

Far beyond any real payload, and far from the interpreter's recursion limit, so every reader
(workers, the dashboard) can decode what was written.
"""


class JsonCodec:
    """The default codec: JSON through msgspec, typed on the way back.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Greet:
        ...     name: str
        >>> codec = JsonCodec()
        >>> codec.decode(codec.encode(Greet("ada")), Greet)
        Greet(name='ada')
    """

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(enc_hook=_encode_extra)
        self._untyped = msgspec.json.Decoder()
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any] | None] = {}

    def encode(self, value: Any) -> bytes:
        """Return `value` as JSON bytes; raise EncodeError for values JSON cannot carry.

        Refused: types JSON has no form for, NaN and infinity (JSON has neither; msgspec would
        write null), and values nested deeper than `MAX_DEPTH` or cyclic.
        """
        try:
            raw = self._encoder.encode(value)
        except RecursionError:
            raise EncodeError(_too_deep(value)) from None
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise EncodeError(f"cannot encode {type(value).__qualname__} as JSON: {exc}") from exc
        if nested_deeper(raw, MAX_DEPTH):
            raise EncodeError(_too_deep(value))
        if b"null" in raw:  # where msgspec writes NaN and infinity: look for them in the value
            _refuse_non_finite(value)
        return raw

    def decode(self, raw: bytes, into: type[Any] | None = None) -> Any:
        """Return the payload in `raw`, validated into `into` when given."""
        try:
            if into is None or into is Any:
                return self._untyped.decode(raw)
            decoder = self._decoder_for(into)
            if decoder is not None:
                return decoder.decode(raw)
            return _construct(into, self._untyped.decode(raw))
        except DecodeError:
            raise
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(_describe(into, exc)) from exc
        except (TypeError, ValueError) as exc:
            raise DecodeError(_describe(into, exc)) from exc

    def _decoder_for(self, into: type[Any]) -> msgspec.json.Decoder[Any] | None:
        try:
            return self._decoders[into]
        except KeyError:
            pass
        decoder: msgspec.json.Decoder[Any] | None
        if _is_pydantic(into) or _is_plain_subclass(into):
            decoder = None
        else:
            try:
                decoder = msgspec.json.Decoder(into)
            except TypeError:  # a class msgspec does not know: built by _construct instead
                decoder = None
        self._decoders[into] = decoder
        return decoder


class PickleCodec:
    """Pickle, for trusted stores only: decoding runs code chosen by whoever wrote the bytes.

    Never the default; pass `codec=PickleCodec()` to opt in.
    """

    def encode(self, value: Any) -> bytes:
        """Return the pickle of `value`."""
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (TypeError, ValueError, pickle.PicklingError) as exc:
            raise EncodeError(f"cannot pickle {type(value).__qualname__}: {exc}") from exc

    def decode(self, raw: bytes, into: type[Any] | None = None) -> Any:
        """Unpickle `raw` (trusted input only)."""
        try:
            return pickle.loads(raw)
        except Exception as exc:
            raise DecodeError(f"cannot unpickle payload: {exc}") from exc


def _encode_extra(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 model
        return dump(mode="json")
    for base in _JSON_BASES:  # a subclass of a JSON type encodes as that type
        if isinstance(value, base):
            return cast(Callable[[Any], Any], base)(value)
    raise TypeError(f"unsupported type {type(value).__qualname__}")


def _too_deep(value: Any) -> str:
    return (
        f"cannot encode {type(value).__qualname__} as JSON: it is cyclic or nested more than "
        f"{MAX_DEPTH} levels deep"
    )


def nested_deeper(raw: bytes, limit: int) -> bool:
    """Whether the JSON in `raw` nests lists and objects more than `limit` levels deep.

    No fewer brackets than levels: most payloads are answered by counting. Otherwise strings
    are cut out and every other byte but brackets dropped; each round then removes the
    innermost pairs, one level of nesting everywhere at once, at the speed of bytes.replace.
    Readers of stored payloads (the dashboard) use it too, before parsing what they show.

    Example:
        >>> nested_deeper(b'[[1], {"a": ["]]]"]}]', 2), nested_deeper(b'[[[1]]]', 2)
        (True, True)
        >>> nested_deeper(b'[[1], {"a": "[[["}]', 2)
        False
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(_ONE_BRACKET_KIND, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_ONE_BRACKET_KIND = bytes.maketrans(b"{}", b"[]")


def _refuse_non_finite(value: Any) -> None:
    """Raise EncodeError naming where `value` holds a NaN or an infinity, if it does."""
    try:
        tree = msgspec.to_builtins(value, enc_hook=_encode_extra)
    except (TypeError, ValueError, RecursionError):  # what JSON encoded, to_builtins converts
        return
    stack: list[tuple[Any, str]] = [(tree, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise EncodeError(
                f"cannot encode {type(value).__qualname__} as JSON: {node} at {path} "
                "(JSON has no NaN or infinity)"
            )
        if isinstance(node, dict):
            stack.extend((child, f"{path}.{key}") for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(node))


def _is_pydantic(cls: type[Any]) -> bool:
    return callable(getattr(cls, "model_validate", None))


_JSON_BASES = (str, int, float, list, dict)


def _is_plain_subclass(cls: type[Any]) -> bool:
    """A user subclass of a JSON type (`class Email(str)`): msgspec would want the exact type."""
    return (
        isinstance(cls, type)
        and issubclass(cls, _JSON_BASES)
        and cls not in _JSON_BASES
        and not issubclass(cls, enum.Enum)
        and not is_typeddict(cls)
    )


def _construct(into: type[Any], value: Any) -> Any:
    if _is_pydantic(into):
        try:
            return into.model_validate(value)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise DecodeError(_describe(into, exc)) from exc
    if isinstance(value, into):
        return value
    if isinstance(value, dict):
        return into(**value)
    return into(value)


def _describe(into: type[Any] | None, exc: Exception) -> str:
    target = "payload" if into is None else f"payload as {into.__module__}.{into.__qualname__}"
    return f"cannot decode {target}: {exc}"
