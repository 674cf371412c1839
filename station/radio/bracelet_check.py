"""A bracelet checked over the mesh, from the station: does it answer, by which path, with what
battery and position, and is it still set as it was provisioned? And, when asked, its profile
written again over admin messages (the station radio's key is its admin key since provisioning).

Each question is asked on its own and its failure is an answer too (a bracelet out of reach
answers nothing; a radio that rate-limits a second check within ten seconds drops the request,
PhoneAPI.cpp handleToRadioPacket). Nothing here raises for the mesh's sake: the result says.

The firmware's modules answer as MeshModule::allocReply makes them: PositionModule with its
current position, DeviceTelemetryModule with device metrics, TraceRouteModule with the route
both ways and the SNR of each hop in quarter dB, AdminModule with the config asked for.
"""

from __future__ import annotations

import time
from typing import Callable

from meshtastic.protobuf import mesh_pb2, portnums_pb2, telemetry_pb2

from station import registry
from station.radio import provision
from station.radio.admin import AdminRefused, RadioAdmin
from station.radio.info import RadioInfo
from station.radio.link import LinkDown, RadioLink
from station.radio.profile import MeshProfile
from station.wording import Wording

PORT = portnums_pb2.PortNum
REQUEST_TIMEOUT_S = 45.0        # a few hops on LongFast, with the firmware's retransmissions
COME_BACK_S = 90.0              # the bracelet's reboot after a commit, then its first answer


def _ask(link: RadioLink, num: int, port: int, payload: bytes, timeout: float) -> tuple[mesh_pb2.MeshPacket | None, str]:
    try:
        p = link.ask_node(num, port, payload, timeout)
    except LinkDown as e:
        return None, str(e)
    if p.decoded.portnum == PORT.ROUTING_APP:
        err = mesh_pb2.Routing.FromString(p.decoded.payload).error_reason
        return None, mesh_pb2.Routing.Error.Name(err) if err else "acknowledged without an answer"
    if p.decoded.portnum != port:
        return None, f"answered on port {p.decoded.portnum}"
    return p, ""


def position(link: RadioLink, num: int, timeout: float) -> dict:
    p, error = _ask(link, num, PORT.POSITION_APP, mesh_pb2.Position().SerializeToString(), timeout)
    if p is None:
        return {"error": error}
    pos = mesh_pb2.Position.FromString(p.decoded.payload)
    if not pos.latitude_i and not pos.longitude_i:
        return {"fix": False}
    return {"fix": True, "lat": pos.latitude_i / 1e7, "lon": pos.longitude_i / 1e7,
            "precision_bits": pos.precision_bits or None, "time": pos.time or None}


def telemetry(link: RadioLink, num: int, timeout: float) -> dict:
    ask = telemetry_pb2.Telemetry(device_metrics=telemetry_pb2.DeviceMetrics())
    p, error = _ask(link, num, PORT.TELEMETRY_APP, ask.SerializeToString(), timeout)
    if p is None:
        return {"error": error}
    m = telemetry_pb2.Telemetry.FromString(p.decoded.payload).device_metrics
    return {"battery": m.battery_level if m.HasField("battery_level") else None,
            "voltage": round(m.voltage, 2) if m.HasField("voltage") else None,
            "external_power": m.battery_level == 101}


def traceroute(link: RadioLink, num: int, timeout: float) -> dict:
    p, error = _ask(link, num, PORT.TRACEROUTE_APP, mesh_pb2.RouteDiscovery().SerializeToString(), timeout)
    if p is None:
        return {"error": error}
    rd = mesh_pb2.RouteDiscovery.FromString(p.decoded.payload)
    # SNRs are in quarter dB; INT8_MIN (-128) marks a hop whose SNR is unknown (TraceRouteModule).
    snr = lambda xs: [None if x == -128 else x / 4 for x in xs]  # noqa: E731
    return {"towards": [f"!{n:08x}" for n in rd.route], "snr_towards": snr(rd.snr_towards),
            "back": [f"!{n:08x}" for n in rd.route_back], "snr_back": snr(rd.snr_back),
            "hops": len(rd.route)}


def profile_state(link: RadioLink, num: int, profile: MeshProfile, timeout: float,
                  fix: bool, record: Callable[[str, str], None]) -> dict:
    admin = RadioAdmin(link, timeout, node=num)
    try:
        meta = admin.metadata()
    except (LinkDown, AdminRefused) as e:
        hint = " (it does not take the station's key as its admin key: provision it again over USB)" \
            if "UNAUTHORIZED" in str(e) else ""
        return {"error": f"{e}{hint}"}
    info = RadioInfo(node=f"!{num:08x}", firmware=meta.firmware_version,
                     hw_model=mesh_pb2.HardwareModel.Name(meta.hw_model),
                     excluded_modules=[n for n, bit in mesh_pb2.ExcludedModules.items()
                                       if bit and meta.excluded_modules & bit])
    out: dict = {"firmware": info.firmware, "hw_model": info.hw_model}
    try:
        method = provision.method_for(info)
    except provision.Refused as e:
        return {**out, "error": str(e)}
    try:
        drift = provision.drift(admin, profile, method)
    except (LinkDown, AdminRefused) as e:
        return {**out, "error": f"its configuration could not be read: {e}"}
    out["drift"] = [{"field": f, "have": h, "want": w} for f, h, w in drift]
    if not drift or not fix:
        return out
    try:
        provision.reapply(admin, profile, method)
    except (LinkDown, AdminRefused) as e:
        record("bracelet re-configuration failed", Wording("{node}: {error}", node=f"!{num:08x}", error=str(e)))
        return {**out, "error": f"the profile could not be written: {e}"}
    record("bracelet re-configured", Wording("{node} over the mesh: {changes}", node=f"!{num:08x}",
                                               changes="; ".join(f"{f} {h} -> {w}" for f, h, w in drift)))
    out["fixed"] = True
    deadline = time.monotonic() + COME_BACK_S
    while time.monotonic() < deadline:        # after its reboot: read back
        try:
            out["drift_after"] = [{"field": f, "have": h, "want": w}
                                  for f, h, w in provision.drift(RadioAdmin(link, timeout, node=num), profile, method)]
            return out
        except (LinkDown, AdminRefused):
            time.sleep(1.0)
    out["error"] = f"it did not answer within {COME_BACK_S:.0f} s after its reboot"
    return out


def run(link: RadioLink, num: int, profile: MeshProfile, *, fix: bool = False,
        record: Callable[[str, str], None] = lambda a, d: None, timeout: float = REQUEST_TIMEOUT_S,
        store: Callable[[Callable], None] = lambda fn: None) -> dict:
    """`store(fn)` runs fn(db) in a write transaction (the daemon's writer, or the command's)."""
    started = time.time()
    result = {"node": f"!{num:08x}", "position": position(link, num, timeout),
              "telemetry": telemetry(link, num, timeout), "route": traceroute(link, num, timeout)}
    result["profile"] = profile_state(link, num, profile, timeout, fix, record)
    prof = result["profile"]
    if prof.get("firmware"):
        at = time.time()
        store(lambda db: registry.note_device(db, num, prof["hw_model"], prof["firmware"], at))
    answered = [k for k in ("position", "telemetry", "route") if "error" not in result[k]]
    result["ok"] = len(answered) == 3 and "error" not in result["profile"] and \
        not result["profile"].get("drift_after", result["profile"].get("drift"))
    result["took_s"] = round(time.time() - started, 1)
    record("bracelet checked", Wording("{node}: {answer}{drift}", node=f"!{num:08x}",
                                       answer=Wording("answered {what}", what=", ".join(answered)) if answered
                                       else Wording("no answer"),
                                       drift=Wording("; profile differs") if result["profile"].get("drift") else ""))
    return result
