"""The mesh profile: what the office's radios must be set to ([mesh] in the config), and how a
radio differs from it.

Every technician tool applies or checks against this one description: region, modem preset, a
private primary channel (its name, and a random key generated at first use and kept in a 0600
file), hop limit, the station radio's role, position precision, and the oldest firmware the
office accepts. The key is never printed, logged or stored in the database: radios are compared
by `channels.key_id`.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from station.radio import firmware
from station.radio.channels import PRESET_NAMES, Preset, key_id
from station.radio.info import Finding, RadioInfo

PSK_BYTES = 32      # AES-256, the longest key a channel takes (channel.options psk max_size:32)


class ProfileError(Exception):
    """The profile cannot be used as it is; the message says what to do."""


@dataclass(frozen=True)
class Difference:
    field: str           # "lora.region", "channel.0.psk", ... as the meshtastic CLI names them
    have: str
    want: str
    remedy: str
    configurable: bool = True    # `station radio configure` can mend it (not so a too-old firmware)
    reboots: bool = False        # the radio reboots to apply it (AdminModule.cpp handleSetConfig)


@dataclass(frozen=True)
class MeshProfile:
    region: str
    modem_preset: str
    channel_name: str
    psk_path: Path
    hop_limit: int
    role: str
    position_precision: int
    min_firmware: str

    @classmethod
    def from_config(cls, cfg) -> "MeshProfile":
        m = cfg.mesh
        psk = Path(m["psk_file"]) if m["psk_file"] else cfg.database_path.with_name("mesh.psk")
        if not psk.is_absolute():
            psk = cfg.base_dir / psk
        return cls(m["region"], m["modem_preset"], m["channel_name"], psk, m["hop_limit"], m["role"],
                   m["position_precision"], m["min_firmware"])

    @property
    def channel_display_name(self) -> str:
        return self.channel_name or PRESET_NAMES.get(Preset.Value(self.modem_preset), self.modem_preset)

    def psk(self, *, create: bool = False) -> bytes | None:
        """The private channel's key: None when it has not been generated yet (and `create` is
        false). A key file that others can read is refused: it opens the office's channel."""
        path = self.psk_path
        if not path.exists():
            if not create:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            key = os.urandom(PSK_BYTES)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(key).decode() + "\n")
            return key
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ProfileError(f"{path} can be read by other users (mode {stat.S_IMODE(mode):o}): "
                                   f"chmod 600 {path}, and consider the channel key compromised")
            key = base64.b64decode(path.read_text().strip(), validate=True)
        except OSError as e:
            raise ProfileError(f"the channel key file {path} cannot be read: {e.strerror}") from None
        except ValueError:
            raise ProfileError(f"{path} does not hold a base64 key; move it away to draw a new one") from None
        if len(key) not in (16, 32):
            raise ProfileError(f"{path} holds a {len(key)}-byte key; a channel key is 16 or 32 bytes")
        return key

    def differences(self, info: RadioInfo) -> list[Difference]:
        """Where the station's radio differs from the profile, in the order they are best read."""
        out: list[Difference] = []
        if self.region and info.region != self.region:
            out.append(Difference("lora.region", info.region, self.region,
                                  "set the region the office is licensed for", reboots=True))
        if info.modem_preset != self.modem_preset:
            out.append(Difference("lora.modem_preset", info.modem_preset or "custom", self.modem_preset,
                                  "every radio and bracelet of the office must use the same preset", reboots=True))
        if info.hop_limit != self.hop_limit:
            out.append(Difference("lora.hop_limit", str(info.hop_limit), str(self.hop_limit),
                                  "the office's hop limit"))
        if not info.tx_enabled:
            out.append(Difference("lora.tx_enabled", "false", "true", "no receipt leaves a radio that cannot send",
                                  reboots=True))
        if info.role != self.role:
            out.append(Difference("device.role", info.role, self.role, "the station radio's role", reboots=True))
        primary = info.primary
        if self.channel_name:
            have_name = primary.name if primary else "none"
            if have_name != self.channel_name:
                out.append(Difference("channel.0.name", have_name, self.channel_name,
                                      "the office's private primary channel"))
            want_key = self.psk()
            have_key = primary.key_id if primary else "none"
            if want_key is None:
                out.append(Difference("channel.0.psk", f"key {have_key}", "a new random key",
                                      "station radio configure draws the office's key and keeps it in "
                                      f"{self.psk_path}"))
            elif have_key != key_id(want_key):
                out.append(Difference("channel.0.psk", f"key {have_key}", f"key {key_id(want_key)}",
                                      "the office's channel key"))
        if primary is not None and primary.precision_bits != self.position_precision:
            out.append(Difference("channel.0.position_precision", str(primary.precision_bits),
                                  str(self.position_precision), "the office's position precision"))
        if info.firmware and firmware.version_tuple(info.firmware) < firmware.version_tuple(self.min_firmware):
            out.append(Difference("firmware", info.firmware, f">= {self.min_firmware}",
                                  f"flash firmware {self.min_firmware} or newer (station radio flash FILE)",
                                  configurable=False))
        return out


# Differences a station can live with for a while (an old firmware is also an old-firmware
# finding, with its own level); every other one stops alerts or receipts.
MINOR = ("lora.hop_limit", "channel.0.position_precision", "firmware")


def findings(profile: MeshProfile, info: RadioInfo) -> list[Finding]:
    """The radio's differences from the profile, as findings with a remedy."""
    try:
        diffs = profile.differences(info)
    except ProfileError as e:
        return [Finding("fail", "profile-psk", str(e), "mend the key file, then station radio configure")]
    return [Finding("warn" if d.field in MINOR else "fail", f"profile-{d.field}",
                    f"{d.field} is {d.have}; the mesh profile says {d.want} ({d.remedy})",
                    "station radio configure" if d.configurable else d.remedy)
            for d in diffs]
