"""Benchmarks that cannot rot: each one's quick mode runs here, at HEAD, and must produce every figure
the README quotes. Only that the figures exist and are sane is checked; their values are for the note,
never a timed assertion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_ingest_benchmark_quick_mode_measures_throughput_latency_and_restart_loss(tmp_path):
    out = tmp_path / "ingest.json"
    run = subprocess.run([sys.executable, "bench/ingest.py", "--quick", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(0o022))
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert results["commit"].startswith(head[:12])
    assert results["firmware"] == "2.7.26"
    for transport in ("pty", "tcp"):
        r = results[transport]
        assert r["bare_library"]["frames_per_s"] > 0 and r["station_full_path"]["frames_per_s"] > 0
        assert 0 < r["latency_at_10_per_s"]["p50_ms"] <= r["latency_at_10_per_s"]["p99_ms"]
        assert r["station_full_path"]["peak_rss_mib"] > 0
    restarts = {(r["device"], r["restart"]): r for r in results["restart_loss_5_packets_per_s"]}
    assert set(restarts) == {(d, h) for d in ("heltec-v3", "tbeam") for h in ("clean", "crash")}
    for r in restarts.values():
        # Alerts were really sent across a restart, and loss is counted, not guessed.
        assert r["alerts_sent"] > 0 and 0 <= r["alerts_lost"] <= r["alerts_sent"]


def quick(tmp_path, script: str, *options: str) -> dict:
    out = tmp_path / "result.json"
    # From an operator's shell (umask 022), not the suite's 027: a benchmark must make its files
    # as the station does, or `station run` refuses them.
    run = subprocess.run([sys.executable, f"bench/{script}", "--quick", "--out", str(out), *options],
                         cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(0o022))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_console_benchmark_quick_mode_times_every_page_tile_and_the_event_stream(tmp_path):
    results = quick(tmp_path, "console.py")
    assert results["quick"] is True and results["commit"]
    timed = results["server_time"]
    assert {"alerts page", "incident page", "api status", "health page"} <= set(timed)
    assert any(name.startswith("tile from PMTiles") for name in timed)
    assert all(0 <= t["p50_ms"] <= t["p95_ms"] for t in timed.values())
    assert results["new_alert_to_open_stream_ms"]["max"] > 0 and results["console_peak_rss_mib"] > 0


@pytest.mark.slow
def test_relay_benchmark_quick_mode_drains_its_backlog_once_sos_first(tmp_path):
    results = quick(tmp_path, "relay.py")
    assert results["rows"] == sum(d["posts"] for d in results["destinations"].values())
    assert results["duplicates"] == 0 and results["link_return_to_first_sos_s"] is not None
    assert results["outbox_states"] == {"sent": results["rows"]}


@pytest.mark.slow
def test_sd_card_benchmark_quick_mode_counts_bytes_and_fsyncs_at_idle_and_on_a_busy_mesh(tmp_path):
    results = quick(tmp_path, "sd_card.py")
    assert results["quick"] is True and results["commit"]
    busy = results["one_packet_per_s"]
    # A mesh of one packet a second really reached the disk, each one durably: measured, not assumed.
    assert busy["packets_stored"] > 0 and busy["fsyncs"] >= 1 and busy["bytes_written"] > 0
    assert results["idle"]["packets_stored"] == 0 and set(results["targets_met"]) == {
        "idle_under_5_mb_a_day", "idle_at_most_one_fsync_a_minute"}


@pytest.mark.slow
def test_attack_benchmark_quick_mode_measures_a_wearers_sos_under_every_flood(tmp_path):
    results = quick(tmp_path, "attack.py")
    assert results["quick"] is True and results["commit"]
    conditions = ("quiet", "login_flood_16_clients", "login_flood_16_addresses",
                  "mesh_flood_250_fake_sos_20_pins_per_s", "both")
    for name in conditions:
        r = results[name]
        assert r["n"] == results["sos_measured"] and 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
    # The floods really reached the console's password check, from one address and from many.
    assert int(results["login_flood_16_clients"]["login_answers"].get("429", 0)) > 0
    # (How many depends on the machine: each is a scrypt check; a loaded machine does fewer.)
    assert int(results["login_flood_16_addresses"]["login_answers"].get("401", 0)) > 0


@pytest.mark.slow
def test_escalation_benchmark_quick_mode_times_every_channel_and_the_idle_cpu(tmp_path):
    results = quick(tmp_path, "escalation.py")
    assert results["quick"] is True and results["commit"]
    assert set(results["alert_to_first_message_ms"]) == {"mesh", "sms", "email", "ntfy"}
    assert all(r["n"] == 3 and 0 < r["p50"] <= r["max"] for r in results["alert_to_first_message_ms"].values())
    assert results["idle_cpu_percent_100_wearers"] >= 0
    # The watch swept its 100 wearers while idle and found nothing to raise (all heard, none late).
    assert results["watch_sweeps_while_idle"] >= 1 and results["watch_alarms_while_idle"] == 0
    assert results["watch_sweep_ms_100_wearers"] > 0


@pytest.mark.slow
def test_network_benchmark_quick_mode_times_ten_stations_to_the_hub_and_a_backlog(tmp_path):
    results = quick(tmp_path, "network.py")
    assert results["quick"] is True and results["commit"]
    live = results["live"]
    assert live["stations"] == 10 and live["events"] > 0
    assert 0 < live["commit_to_hub_ms"]["p50"] <= live["commit_to_hub_ms"]["p99"]
    assert live["hub_peak_rss_mib"] > 0
    assert results["backlog"]["events"] == 2000 and results["backlog"]["caught_up_s"] > 0
    # A coordinator's Network page, fetched from a real console beside the hub while it catches up.
    page = results["backlog"]["network_page_ms"]
    assert page["n"] >= 1 and 0 < page["p50"] <= page["p95"]


@pytest.mark.slow
def test_network_benchmark_quick_mode_runs_through_a_rabbitmq_cluster_too(tmp_path):
    from tests import rabbitmq
    if not rabbitmq.installed():
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is not installed; .ci/run installs it")
        pytest.skip("rabbitmq-server is not installed")
    results = quick(tmp_path, "network.py", "--rabbitmq")
    assert results["broker"].startswith("RabbitMQ") and results["live"]["events"] > 0
    assert 0 < results["live"]["commit_to_hub_ms"]["p50"] <= results["live"]["commit_to_hub_ms"]["p99"]
    assert results["backlog"]["events"] == 2000
