"""JSON bodies in Deepgram's exact shapes, and the canned transcript the mock hands out.

Theory of operation. Real clients parse what the mock sends with their own models (the official
SDKs use generated pydantic models with required fields), so every builder here produces the
field names and types Deepgram documents:

- streaming ``Results``: type, channel_index [0, 1], duration, start, is_final, speech_final,
  from_finalize, channel.alternatives[{transcript, confidence, words[{word, start, end,
  confidence, punctuated_word}]}], metadata{request_id, model_uuid, model_info{name, version, arch}};
- streaming ``Metadata``: type, transaction_key "deprecated", request_id, sha256 (hex digest of
  every audio byte received), created (ISO 8601, UTC, "Z"), duration, channels, and models /
  model_info once audio was decoded (a stream that got none ends with the minimal form, as the
  docs' example and live captures show);
- streaming ``Error`` (the SDK's ``ListenV1Error``): type, variant, description, message;
- HTTP error bodies: {err_code, err_msg, request_id} (the same text goes into ``dg-error``);
- the pre-recorded (REST) response: {metadata{...}, results{channels[{alternatives[...]}]}}.

Words come from :class:`WordSource`, which cycles through one English sentence a few words per
span of speech, so a transcript is recognisably the mock's and never empty when speech arrived.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wsdoctor.deepgram import TRANSACTION_KEY, ServerMessage

__all__ = [
    "MODEL_INFO",
    "MODEL_UUID",
    "SENTENCE",
    "JSONDict",
    "Word",
    "WordSource",
    "created_now",
    "error_body",
    "error_message",
    "metadata_message",
    "new_request_id",
    "rest_response",
    "results_message",
    "transcript_of",
]

JSONDict = dict[str, Any]

SENTENCE: tuple[str, ...] = ("hello", "from", "the", "wsdoctor", "mock", "this", "is", "a", "streaming", "test")
MODEL_UUID = "1dbdfb4d-85b2-4659-9831-16b3c76229aa"
MODEL_INFO: dict[str, str] = {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}
WORDS_PER_S = 3.0
WORD_CONFIDENCE = 0.99


def new_request_id() -> str:
    return str(uuid.uuid4())


def created_now() -> str:
    """Deepgram's ``created``: ISO 8601 in UTC with milliseconds and a "Z"."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str

    def to_dict(self) -> JSONDict:
        return {
            "word": self.word,
            "start": self.start,
            "end": self.end,
            "confidence": self.confidence,
            "punctuated_word": self.punctuated_word,
        }


class WordSource:
    """Hands out the canned sentence, a few words per span of speech, cycling forever."""

    def __init__(self, sentence: Sequence[str] = SENTENCE) -> None:
        self._sentence = tuple(sentence)
        self._next = 0

    def take(self, start_s: float, duration_s: float) -> list[Word]:
        """Words spread evenly over ``[start_s, start_s + duration_s)``; at least one."""
        n = max(1, min(len(self._sentence), round(duration_s * WORDS_PER_S)))
        slot = duration_s / n if duration_s > 0 else 0.0
        words: list[Word] = []
        for i in range(n):
            idx = self._next % len(self._sentence)
            self._next += 1
            text = self._sentence[idx]
            punctuated = text
            if idx == 0:
                punctuated = punctuated[:1].upper() + punctuated[1:]
            if idx == len(self._sentence) - 1:
                punctuated += "."
            w_start = start_s + i * slot
            words.append(
                Word(
                    word=text,
                    start=round(w_start, 3),
                    end=round(w_start + slot * 0.9, 3),
                    confidence=WORD_CONFIDENCE,
                    punctuated_word=punctuated,
                )
            )
        return words


def transcript_of(words: Sequence[Word]) -> str:
    return " ".join(w.word for w in words)


def _alternative(words: Sequence[Word]) -> JSONDict:
    return {
        "transcript": transcript_of(words),
        "confidence": WORD_CONFIDENCE if words else 0.0,
        "words": [w.to_dict() for w in words],
    }


def results_message(
    *,
    request_id: str,
    start: float,
    duration: float,
    words: Sequence[Word] = (),
    is_final: bool = True,
    speech_final: bool = False,
    from_finalize: bool = False,
) -> JSONDict:
    return {
        "type": ServerMessage.RESULTS.value,
        "channel_index": [0, 1],
        "duration": round(duration, 3),
        "start": round(start, 3),
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [_alternative(words)]},
        "metadata": {
            "request_id": request_id,
            "model_uuid": MODEL_UUID,
            "model_info": dict(MODEL_INFO),
        },
    }


def _metadata_fields(
    *, request_id: str, sha256: str, created: str, duration: float, channels: int, decoded: bool = True
) -> JSONDict:
    fields: JSONDict = {
        "transaction_key": TRANSACTION_KEY,
        "request_id": request_id,
        "sha256": sha256,
        "created": created,
        "duration": round(duration, 3),
        "channels": channels,
    }
    if decoded:
        fields["models"] = [MODEL_UUID]
        fields["model_info"] = {MODEL_UUID: dict(MODEL_INFO)}
    return fields


def metadata_message(
    *, request_id: str, sha256: str, created: str, duration: float, channels: int, decoded: bool = True
) -> JSONDict:
    """``decoded=False``: no audio was decoded, so no model ran: the minimal Metadata."""
    return {
        "type": ServerMessage.METADATA.value,
        **_metadata_fields(
            request_id=request_id, sha256=sha256, created=created, duration=duration, channels=channels, decoded=decoded
        ),
    }


def error_message(description: str, message: str = "", variant: str = "SchemaError") -> JSONDict:
    """The streaming ``Error`` message, sent for a text frame the server cannot use."""
    return {"type": ServerMessage.ERROR.value, "variant": variant, "description": description, "message": message}


def error_body(err_code: str, err_msg: str, request_id: str) -> JSONDict:
    """The JSON body of an HTTP rejection (its ``err_msg`` also goes into ``dg-error``)."""
    return {"err_code": err_code, "err_msg": err_msg, "request_id": request_id}


def rest_response(
    *,
    request_id: str,
    sha256: str,
    created: str,
    duration: float,
    channels: int,
    words: Sequence[Word],
) -> JSONDict:
    """The pre-recorded (``POST /v1/listen``) response."""
    return {
        "metadata": _metadata_fields(
            request_id=request_id, sha256=sha256, created=created, duration=duration, channels=channels
        ),
        "results": {"channels": [{"alternatives": [_alternative(words)]}]},
    }
