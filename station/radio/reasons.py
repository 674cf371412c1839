"""Why a packet to a bracelet did not arrive, in words an office understands: the routing errors
the firmware reports (mesh.proto Routing.Error), as the station records them in a receipt."""

from __future__ import annotations

PLAIN = {   # the reasons in words an office understands
    "MAX_RETRANSMIT": "the bracelet did not answer after the radio's retries (out of reach or off)",
    "PKI_SEND_FAIL_PUBLIC_KEY": "the station's radio does not have the bracelet's key",
    "PKI_UNKNOWN_PUBKEY": "the bracelet does not have the station's key",
    "DUTY_CYCLE_LIMIT": "the radio used its hourly air time (duty cycle)",
    "NO_CHANNEL": "the bracelet is not on the station's channel",
    "PKI_FAILED": "encryption to the bracelet failed",
    "RATE_LIMIT_EXCEEDED": "the radio refused to send so soon after another message",
    "NO_RESPONSE": "no response from the bracelet",
    "TOO_LARGE": "the message is too long for one packet",
}


def plain(reason: str | None) -> str:
    if not reason:
        return ""
    code = reason.split(":")[0].strip()
    return PLAIN.get(code, reason)
