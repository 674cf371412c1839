"""Apply the mesh profile to the station's radio over admin messages, and verify it took.

The firmware saves the changes made inside begin_edit_settings/commit_edit_settings together at
the commit, and the commit always reboots the radio after DEFAULT_REBOOT_SECONDS
(AdminModule.cpp:335-341, saveChanges:1364-1375). So: read the radio's current sections, change
only what differs, commit once, wait for the radio to come back and complete a new handshake,
and compare that handshake with the profile again. Nothing is "done" on the radio's word alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from meshtastic.protobuf import channel_pb2, config_pb2

from station.radio.admin import AdminRefused, RadioAdmin
from station.radio.info import RadioInfo
from station.radio.link import LinkDown, RadioLink
from station.radio.profile import Difference, MeshProfile, ProfileError
from station.wording import Wording

LoRa = config_pb2.Config.LoRaConfig
Role = config_pb2.Config.DeviceConfig.Role


SETTLE_S = 1.0


class ConfigureError(Exception):
    """The radio could not be brought to the profile; the message says where it stopped."""


@dataclass
class Outcome:
    applied: list[Difference] = field(default_factory=list)
    remaining: list[Difference] = field(default_factory=list)   # still different after the read-back
    rebooted: bool = False

    @property
    def ok(self) -> bool:
        return not [d for d in self.remaining if d.configurable]


def describe(d: Difference) -> str:
    return f"{d.field}: {d.have} -> {d.want}" + (" (the radio reboots)" if d.reboots else "")


def warnings(diffs: list[Difference]) -> list[str]:
    """What a technician must know before saying yes."""
    out = []
    if any(d.field.startswith("channel.0.") and d.field != "channel.0.position_precision" for d in diffs) or \
            any(d.field in ("lora.region", "lora.modem_preset") for d in diffs):
        out.append("bracelets still on the old channel, region or preset will not be heard until they are "
                   "set to the same profile (station bracelets provision)")
    return out


def _wanted_sections(profile: MeshProfile, admin: RadioAdmin, diffs: list[Difference]):
    fields = {d.field for d in diffs if d.configurable}
    lora = admin.config("lora")
    device = admin.config("device")
    channel = admin.channel(0)
    changed = set()
    if "lora.region" in fields:
        lora.region = LoRa.RegionCode.Value(profile.region)
    if "lora.modem_preset" in fields:
        lora.use_preset = True
        lora.modem_preset = LoRa.ModemPreset.Value(profile.modem_preset)
    if "lora.hop_limit" in fields:
        lora.hop_limit = profile.hop_limit
    if "lora.tx_enabled" in fields:
        lora.tx_enabled = True
    if fields & {"lora.region", "lora.modem_preset", "lora.hop_limit", "lora.tx_enabled"}:
        changed.add("lora")
    if "device.role" in fields:
        device.role = Role.Value(profile.role)
        changed.add("device")
    if fields & {"channel.0.name", "channel.0.psk", "channel.0.position_precision"}:
        channel.index = 0
        channel.role = channel_pb2.Channel.Role.PRIMARY
        if profile.channel_name:
            channel.settings.name = profile.channel_name
            channel.settings.psk = profile.psk(create=True)
        channel.settings.module_settings.position_precision = profile.position_precision
        changed.add("channel")
    return lora, device, channel, changed


def apply(link: RadioLink, profile: MeshProfile, *, return_timeout_s: float = 90.0,
          admin_timeout_s: float = 10.0) -> Outcome:
    """Bring the radio on `link` to `profile`. Raises ConfigureError with where it stopped."""
    info = link.radio_info
    if info is None or not link.connected:
        raise ConfigureError("the radio is not connected")
    if profile.channel_name:
        profile.psk(create=True)        # drawn now, so the difference and the write agree
    diffs = [d for d in profile.differences(info) if d.configurable]
    outcome = Outcome()
    if not diffs:
        outcome.remaining = profile.differences(info)
        return outcome
    admin = RadioAdmin(link, admin_timeout_s)
    started = time.time()
    try:
        lora, device, channel, changed = _wanted_sections(profile, admin, diffs)
        admin.begin()
        if "lora" in changed:
            admin.set_config("lora", lora)
        if "device" in changed:
            admin.set_config("device", device)
        if "channel" in changed:
            admin.set_channel(channel)
        admin.commit()
    except (LinkDown, AdminRefused) as e:
        raise ConfigureError(f"the radio did not take the new settings: {e}; nothing was committed "
                             "unless it rebooted") from None
    outcome.applied = diffs
    after = wait_for_new_handshake(link, started, return_timeout_s)
    if after is None:
        raise ConfigureError(f"the radio did not come back within {return_timeout_s:.0f} s after its reboot: "
                             "check its cable and `station radio info`")
    outcome.rebooted = True
    outcome.remaining = profile.differences(after)
    return outcome


def wait_for_new_handshake(link: RadioLink, since: float, timeout: float) -> RadioInfo | None:
    """The radio's next complete handshake after `since` (it reboots at the commit)."""
    # After `rebooted` the library handshakes again on the old interface while the link tears it
    # down and reconnects: only a handshake that stays the link's own for SETTLE_S counts.
    deadline = time.monotonic() + timeout
    seen, seen_at = None, 0.0
    while time.monotonic() < deadline:
        info = link.radio_info
        if info is not None and info.at > since and link.connected:
            if info is not seen:
                seen, seen_at = info, time.monotonic()
            elif time.monotonic() - seen_at >= SETTLE_S:
                return info
        else:
            seen = None
        time.sleep(0.1)
    return None


def run_and_report(link: RadioLink, profile: MeshProfile, by: str, record: Callable[[str, str], None],
                   **timeouts: float) -> dict:
    """`apply`, with who changed what written to the event log (record(action, detail)) and a
    result a command can print: the same from the daemon's job and from a direct session."""
    before = link.radio_info
    try:
        outcome = apply(link, profile, **timeouts)
    except (ConfigureError, ProfileError) as e:
        record("radio configuration failed", Wording("by {who}: {error}", who=by, error=str(e)))
        return {"ok": False, "error": str(e)}
    if outcome.applied:
        remaining = "" if outcome.ok else Wording(
            "; STILL DIFFERENT after the reboot: {what}",
            what="; ".join(describe(d) for d in outcome.remaining if d.configurable))
        record("radio configured", Wording("by {who} on {node}: {changes}{remaining}", who=by,
                                           node=before.node if before else "?",
                                           changes="; ".join(describe(d) for d in outcome.applied),
                                           remaining=remaining))
    return {"ok": outcome.ok, "rebooted": outcome.rebooted,
            "applied": [asdict(d) for d in outcome.applied], "remaining": [asdict(d) for d in outcome.remaining]}
