"""A node on the virtual air that runs the whole virtual firmware: a bracelet a technician has
provisioned over USB (its own VirtualRadio, with its config, channels and admin module) heard by
the station's radio. It sends what a Bracelet sends, and answers the station's remote admin
messages as AdminModule does for another node (virtual/admin.py handle_remote)."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshtastic.protobuf import channel_pb2, mesh_pb2

from station.radio.virtual.bracelets import Bracelet
from station.radio.virtual.device import VirtualRadio


@dataclass
class RadioNode(Bracelet):
    radio: VirtualRadio | None = field(default=None, repr=False)

    @classmethod
    def of(cls, radio: VirtualRadio, hops_away: int = 1) -> "RadioNode":
        return cls(num=radio.node_num, long_name=radio.owner.long_name, short_name=radio.owner.short_name,
                   device=radio.device, firmware=radio.profile.name, public_key=bytes(radio.keys.public),
                   hops_away=hops_away, radio=radio)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.radio is not None:
            self.keys = self.radio.keys
            self._follow_radio()

    def _follow_radio(self) -> None:
        """What it sends follows its firmware's config: its primary channel and sensor."""
        settings = channel_pb2.ChannelSettings()
        settings.CopyFrom(self.radio.channels[0].settings)
        self.channel = settings
        self.sensor = self.radio.module_config.detection_sensor

    def admin(self, request: mesh_pb2.MeshPacket, *, pki: bool, sender_key: bytes) -> list[mesh_pb2.MeshPacket]:
        answers = self.radio.admin.handle_remote(request, pki=pki, sender_key=sender_key)
        self._follow_radio()
        out = []
        for a in answers:
            p = self.packet(a.decoded.portnum, a.decoded.payload, to=getattr(request, "from"))
            p.decoded.request_id = request.id
            out.append(p)
        return out
