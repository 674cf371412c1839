"""Pages: mesh nodes and station health."""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

from flask import Blueprint, current_app, render_template

from station import __version__, doctor, queries
from web.i18n import gettext as _
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


@bp.route("/health")
@require("read")
def health():
    cfg = current_app.station_config
    status = queries.status(current_app.station_db())
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
    }
    return render_template("health.html", s=status, facts=facts)
