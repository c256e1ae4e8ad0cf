"""One exception hierarchy for the privacy package.

Every refusal is a subclass of :class:`PrivacyError`, so the node can map the whole family to a 4xx
answer with a machine-readable ``reason`` (the class's ``reason`` attribute) and never crash on bad input.
"""
from __future__ import annotations


class PrivacyError(Exception):
    """Base class: a request the privacy layer refuses. ``reason`` is a stable machine-readable code."""

    reason = "privacy_error"


class KeyTooSmall(PrivacyError):
    """A Paillier modulus below the consortium minimum (2048 bits) was generated or loaded."""

    reason = "key_too_small"


class WrongKey(PrivacyError):
    """A ciphertext, vector or message belongs to another key than the one expected."""

    reason = "wrong_key"


class Overflow(PrivacyError):
    """A value, a packed slot or a number of additions exceeds what the layout can hold without wrapping."""

    reason = "overflow"


class MalformedMessage(PrivacyError):
    """A serialized key, ciphertext or protocol message is not what the protocol defines."""

    reason = "malformed_message"


class DuplicateContribution(PrivacyError):
    """A participant contributed twice to the same round (or the same ciphertext was sent twice)."""

    reason = "duplicate_contribution"


class LayoutMismatch(PrivacyError):
    """Vectors with different slot layouts or bucket declarations were combined."""

    reason = "layout_mismatch"


class UnknownParticipant(PrivacyError):
    """A contribution came from a party not declared in the round."""

    reason = "unknown_participant"


class MissingParticipant(PrivacyError):
    """A round was closed while declared participants had not contributed; ``missing`` lists them."""

    reason = "missing_participant"

    def __init__(self, missing: list[str], message: str | None = None):
        self.missing = sorted(missing)
        super().__init__(
            message
            or f"participants {', '.join(self.missing)} did not contribute; re-run the round without them"
        )


class BudgetExhausted(PrivacyError):
    """A differential-privacy release would spend more epsilon than the requester has left on the dataset."""

    reason = "budget_exhausted"


class AlreadyReleased(PrivacyError):
    """A job's result was already released; a second, different release could expose suppressed buckets."""

    reason = "already_released"


class PoolExhausted(PrivacyError):
    """An offline obfuscator pool ran out and was configured not to fall back to online encryption."""

    reason = "pool_exhausted"
