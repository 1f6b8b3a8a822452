"""The official deepgram-sdk's own pydantic types as the schema of a message the mock sends.

The SDK parses frames with ``construct_type()``, which never validates, so "the SDK accepted it"
proves little. Here the model is chosen by the message's ``type`` (some SDK types declare it as
``Literal | Any``, so no discriminated union can be built over them), the message is validated with
it, its ``type`` must come back as sent, and no field the model does not declare may appear."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

__all__ = ["validate_strictly"]


def validate_strictly(models: Mapping[str, type[pydantic.BaseModel]], message: Mapping[str, Any]) -> Any:
    parsed = models[message["type"]].model_validate(message)
    assert getattr(parsed, "type", None) == message["type"]
    declared = set(type(parsed).model_fields)
    assert set(message) <= declared, set(message) - declared
    return parsed
