"""Pages: mesh nodes and station health."""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

from flask import Blueprint, current_app, render_template

from station import __version__, certificate, doctor, queries
from station.radio.profile import MeshProfile
from web.i18n import N_
from web.i18n import gettext as _, ngettext
from web.security import require

bp = Blueprint("pages", __name__)


@bp.route("/nodes")
@require("read")
def nodes():
    return render_template("nodes.html", nodes=queries.nodes(current_app.station_db()))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _power(check: doctor.Check) -> str:
    return {doctor.OK: _("no undervoltage since boot"), doctor.WARN: _("undervoltage has occurred since boot"),
            doctor.FAIL: _("UNDERVOLTAGE NOW: use the official power supply and a short, thick cable"),
            }.get(check.status, _("unknown (vcgencmd cannot be read here)"))


# The radio findings (station/radio/info.py), in words the console translates: what is wrong,
# and what to do about it.
FINDINGS = {
    "region-unset": (N_("The radio has no LoRa region: it does not transmit."),
                     N_("Set the region in the radio.")),
    "tx-disabled": (N_("The radio's transmitter is disabled: no receipt can leave."),
                    N_("Enable the transmitter (lora.tx_enabled).")),
    "public-primary": (N_("The radio's primary channel is the public default one: anyone can read it."),
                       N_("Give the radio and every bracelet a private primary channel.")),
    "old-firmware": (N_("The radio's firmware does not answer heartbeats; the station checks it another way."),
                     N_("Update the radio's firmware to 2.7.4 or newer.")),
    "no-pki": (N_("The radio has no public key: receipts are not end-to-end encrypted."),
               N_("Update the firmware and set the region so the radio draws a key pair.")),
    "bracelet-unpinned": (N_("This bracelet has no pinned key yet."),
                          N_("Register the bracelet with its key.")),
    "radio-lacks-key": (N_("The radio does not hold this bracelet's key: its receipts may be refused."),
                        N_("The station gives the key at the next connection; if this persists, check the radio.")),
    "not-favorite": (N_("This bracelet is not a favourite in the radio: a full node database can evict it."),
                     N_("The station marks it at the next connection.")),
    "t1000e-stock": (N_("This bracelet is a stock SenseCAP T1000-E: no press of its button reaches the station."),
                     N_("Use a bracelet with a button on the detection sensor, or a build with that module.")),
}


def _finding(f: dict) -> dict:
    if f["code"] in FINDINGS:
        text, remedy = _(FINDINGS[f["code"]][0]), _(FINDINGS[f["code"]][1])
    elif f["code"].startswith("profile-"):
        # The field and values are the radio's own names (lora.region, EU_868): not translated.
        text = _("The radio differs from the mesh profile: {detail}", detail=f["text"])
        remedy = _("A technician runs: station radio configure") if f["remedy"] == "station radio configure" \
            else f["remedy"]
    else:
        text, remedy = f["text"], f["remedy"]
    return {"level": f["level"], "subject": f["subject"], "text": text, "remedy": remedy}


def _retention(last: dict | None, cfg) -> str:
    r = cfg.retention

    def days(n: float) -> str:
        return _("forever") if not n else ngettext("{n} day", "{n} days", int(n) if n == int(n) else n)
    policy = _("unregistered nodes kept {u}, bracelet tracks {t}", u=days(r["unregistered_days"]),
               t=days(r["track_days"]))
    if not last:
        return policy + "; " + _("no purge yet (the first runs a few minutes after the daemon starts, then daily)")
    removed = last.get("removed") or {}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["at"]))
    done = _("last purge {when}: {packets} packets, {positions} positions, {telemetry} telemetry records and {rejects} rejected frames removed, {raw} raw packets cleared",  # noqa: E501 (one string for the catalog)
             when=when,
             packets=removed.get("packets", 0), positions=removed.get("positions", 0),
             telemetry=removed.get("telemetry", 0), rejects=removed.get("rejects", 0),
             raw=removed.get("raw_cleared", 0))
    if last.get("error"):
        done += " — " + _("FAILED: {error}", error=last["error"])
    return policy + "; " + done


@bp.route("/health")
@require("read")
def health():
    cfg = current_app.station_config
    status = queries.status(current_app.station_db(), MeshProfile.from_config(cfg))
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    uptime = _read("/proc/uptime")
    disk = shutil.disk_usage(cfg.database_path.parent)
    unknown = _("unknown")
    facts = {
        _("CPU temperature"): f"{int(temp) / 1000:.1f} °C" if temp and temp.isdigit() else unknown,
        _("power"): _power(doctor.undervoltage()),
        _("uptime"): f"{float(uptime.split()[0]) / 3600:.1f} h" if uptime else unknown,
        _("disk free"): _("{free:.1f} GiB of {total:.1f} GiB", free=disk.free / 2**30, total=disk.total / 2**30),
        _("versions"): f"station {__version__}, Python {platform.python_version()}, {platform.system()} "
                    f"{platform.release()}",
        _("checked at"): time.strftime("%Y-%m-%d %H:%M:%S"),
        _("host"): os.uname().nodename,
        _("Retention"): _retention(status.get("retention"), cfg),
        _("HTTPS certificate (SHA-256)"): certificate.shown(cfg) or _("none: the console is only on this machine"),
    }
    findings = [_finding(f) for f in status.get("radio_findings") or []]
    return render_template("health.html", s=status, facts=facts, findings=findings)
