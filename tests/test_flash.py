"""A technician flashes Meshtastic firmware from a file brought on a USB stick, with one command:
the file is checked against the board before anything is written, the radio's configuration and
key survive (or are put back), and the radio is seen running the new version.

The ESP32 path is esptool itself, driving a virtual ESP32 ROM bootloader on a pty (SYNC, register
reads, SPI attach, flash begin/data/end, MD5); the nRF52 path is the 1200-baud touch on a pty and
a bootloader drive (a folder with INFO_UF2.TXT) that appears, takes the file and goes away."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from station.cli import cli
from station.radio.flash import files
from station.radio.virtual.device import VirtualRadio
from station.radio.virtual.esp_rom import APP_OFFSET, EspBoard
from station.radio.virtual.uf2_boot import Nrf52Board

from .conftest import wait_until
from .fakes import firmware_files as ff
from .test_radio_tools import write_config

NEW = "2.7.15.567b8ea"


@pytest.fixture
def bench(tmp_path):
    """Boards on the technician's bench; no daemon running."""
    made = []

    def esp(device: str = "heltec-v3", chip: str = "ESP32-S3") -> EspBoard:
        board = EspBoard(VirtualRadio(device=device, node_num=0x5A7A7200 + len(made), reboot_scale=0.05),
                         str(tmp_path / f"esp-{len(made)}"), chip=chip, flash_mb=8 if chip == "ESP32-S3" else 4)
        board.port.plug()
        made.append(board)
        return board

    def nrf(device: str = "rak4631") -> Nrf52Board:
        board = Nrf52Board(VirtualRadio(device=device, node_num=0xB5A1E100 + len(made), reboot_scale=0.05),
                           str(tmp_path / f"nrf-{len(made)}"), tmp_path / "media")
        board.port.plug()
        made.append(board)
        return board

    yield esp, nrf
    for b in made:
        if isinstance(b, Nrf52Board):
            b.close()
        else:
            b.port.unplug()


def flash(tmp_path, port: str, file: Path, *extra: str):
    config = write_config(tmp_path, port, tmp_path / "station.db")
    return CliRunner().invoke(cli, ["--config", config, "radio", "flash", str(file), "--port", port, "--yes",
                                    "--by", "tech-ana", *extra])


def events(tmp_path) -> list[tuple[str, str]]:
    import sqlite3
    with sqlite3.connect(tmp_path / "station.db") as db:
        return db.execute("SELECT action, detail FROM events ORDER BY id").fetchall()


def channels(radio: VirtualRadio) -> list[tuple[str, bytes]]:
    return [(c.settings.name, bytes(c.settings.psk)) for c in radio.channels if c.role]


@pytest.mark.slow
def test_a_heltec_is_flashed_through_its_rom_bootloader_and_keeps_its_channel_and_key(tmp_path, bench):
    esp, _ = bench
    board = esp("heltec-v3", "ESP32-S3")
    key, chans = board.radio.keys.public, channels(board.radio)
    image = ff.esp_app(NEW, chip_id=9)
    file = ff.write(tmp_path, f"firmware-heltec-v3-{NEW}.bin", image)

    result = flash(tmp_path, board.port.link.as_posix(), file)

    assert result.exit_code == 0, result.output
    assert bytes(board.flash[APP_OFFSET:APP_OFFSET + len(image)]) == image     # written where the app lives
    assert board.flash[:APP_OFFSET] == b"\xff" * APP_OFFSET                  # the bootloader left alone
    assert board.boots == [NEW] and board.radio.profile.version == NEW
    assert "verified (MD5)" in result.output and f"runs {NEW}" in result.output
    assert board.radio.keys.public == key and channels(board.radio) == chans
    action, detail = events(tmp_path)[-1]
    assert action == "radio flashed" and f"-> {NEW}" in detail and "ESP32-S3 ROM bootloader" in detail


@pytest.mark.slow
@pytest.mark.parametrize("device, chip, chip_id", [("heltec-v3", "ESP32-S3", 9), ("tbeam", "ESP32", 0)])
def test_a_factory_image_is_written_from_address_zero(tmp_path, bench, device, chip, chip_id):
    esp, _ = bench
    board = esp(device, chip)
    image = ff.esp_factory(NEW, chip_id=chip_id)
    file = ff.write(tmp_path, f"firmware-{device}-{NEW}.factory.bin", image)
    result = flash(tmp_path, board.port.link.as_posix(), file)
    assert result.exit_code == 0, result.output
    assert bytes(board.flash[:len(image)]) == image
    assert board.boots == [NEW]
    assert "at 0x0 and verified" in result.output


@pytest.mark.slow
def test_a_radio_whose_new_firmware_lost_its_configuration_gets_it_and_its_key_back(tmp_path, bench):
    esp, _ = bench
    board = esp("tbeam", "ESP32")
    key, chans = board.radio.keys.public, channels(board.radio)
    board.forgets_config = True
    file = ff.write(tmp_path, f"firmware-tbeam-{NEW}.bin", ff.esp_app(NEW, chip_id=0))

    result = flash(tmp_path, board.port.link.as_posix(), file)

    assert result.exit_code == 0, result.output
    assert "lost part of the configuration" in result.output
    assert board.radio.keys.public == key, "the bracelets' pinned key for the station must stay valid"
    assert channels(board.radio) == chans
    assert "configuration put back" in events(tmp_path)[-1][1]


@pytest.mark.slow
def test_a_rak4631_is_flashed_through_its_uf2_drive(tmp_path, bench):
    _, nrf = bench
    board = nrf("rak4631")
    key = board.radio.keys.public
    payload = ff.nrf_firmware(NEW)
    file = ff.write(tmp_path, f"firmware-rak4631-{NEW}.uf2", ff.uf2(payload))

    result = flash(tmp_path, board.port.link.as_posix(), file, "--drive", str(tmp_path / "media"))

    assert result.exit_code == 0, result.output
    assert "bootloader drive" in result.output and "INFO" not in result.output
    assert board.flashed[:len(payload)] == payload
    assert board.boots == [NEW] and board.radio.profile.version == NEW
    assert board.radio.keys.public == key
    assert not (tmp_path / "media" / "RAK4631").exists()      # the drive went away: the board rebooted


@pytest.mark.parametrize("name, data, reason", [
    (f"firmware-tbeam-{NEW}.bin", ff.esp_app(NEW, chip_id=0), "but the radio is a HELTEC_V3"),
    (f"firmware-heltec-v3-{NEW}.bin", ff.esp_app(NEW, chip_id=0), "named for heltec-v3 (ESP32-S3) but built for ESP32"),
    (f"firmware-rak4631-{NEW}.uf2", ff.uf2(ff.nrf_firmware(NEW)), "is for rak4631 (RAK4631) but the radio is a HELTEC_V3"),
    (f"firmware-heltec-v3-{NEW}.uf2", ff.uf2(ff.nrf_firmware(NEW)), "a UF2 file for heltec-v3"),
    ("heltec.bin", ff.esp_app(NEW), "not a Meshtastic firmware file name"),
    (f"firmware-station-g9-{NEW}.bin", ff.esp_app(NEW), "a board the station does not know"),
    (f"firmware-heltec-v3-{NEW}.bin", b"PK\x03\x04 a zip, not the image", "no ESP image at 0x0"),
])
def test_a_file_that_does_not_fit_the_esp32_board_is_refused_before_anything_is_written(tmp_path, bench, name,
                                                                                       data, reason):
    esp, _ = bench
    board = esp("heltec-v3", "ESP32-S3")
    file = ff.write(tmp_path, name, data)
    result = flash(tmp_path, board.port.link.as_posix(), file)
    assert result.exit_code == 1
    assert "refused" in result.output and reason in result.output, result.output
    assert not board.download_mode and board.writes == 0 and board.boots == []
    assert board.flash == b"\xff" * len(board.flash)


def test_a_radio_that_cannot_answer_is_still_protected_by_the_chip_check(tmp_path, bench):
    esp, _ = bench
    board = esp("heltec-v3", "ESP32-S3")
    file = ff.write(tmp_path, f"firmware-tbeam-{NEW}.bin", ff.esp_app(NEW, chip_id=0))
    result = flash(tmp_path, board.port.link.as_posix(), file, "--no-keep-config")
    assert result.exit_code == 1
    assert "built for ESP32 but the chip on" in result.output and "is ESP32-S3" in result.output
    assert board.writes == 0 and board.flash == b"\xff" * len(board.flash)


@pytest.mark.parametrize("mangle, reason", [
    (lambda d: d.replace(b"\x40\x28\xa5\xad", b"\x57\x5a\x75\x57"), "UF2 family 0x57755a57"),   # STM32F4's
    (lambda d: d[:-512], "blocks announced"),
    (lambda d: d[:-7], "not whole 512-byte blocks"),
])
def test_a_uf2_for_another_chip_or_cut_short_is_refused_and_the_board_left_running(tmp_path, bench, mangle, reason):
    _, nrf = bench
    board = nrf("rak4631")
    file = ff.write(tmp_path, f"firmware-rak4631-{NEW}.uf2", mangle(ff.uf2(ff.nrf_firmware(NEW))))
    result = flash(tmp_path, board.port.link.as_posix(), file, "--drive", str(tmp_path / "media"))
    assert result.exit_code == 1 and reason in result.output, result.output
    assert board.drive is None and board.boots == []          # never touched into its bootloader


def test_an_nrf_build_offered_to_another_nrf_board_is_refused(tmp_path, bench):
    _, nrf = bench
    board = nrf("techo")
    file = ff.write(tmp_path, f"firmware-rak4631-{NEW}.uf2", ff.uf2(ff.nrf_firmware(NEW)))
    result = flash(tmp_path, board.port.link.as_posix(), file, "--drive", str(tmp_path / "media"))
    assert result.exit_code == 1
    assert "is for rak4631 (RAK4631) but the radio is a T_ECHO: use a firmware-t-echo-….uf2 file" in result.output
    assert board.drive is None and board.boots == []


def test_the_file_table_follows_the_firmware_variants():
    # variants/*/platformio.ini: custom_meshtastic_hw_model_slug and custom_meshtastic_architecture
    assert {b.env: (b.hw_model, b.arch) for b in files.BOARDS.values()} == {
        "heltec-v3": ("HELTEC_V3", "esp32-s3"), "tbeam": ("TBEAM", "esp32"), "rak4631": ("RAK4631", "nrf52840"),
        "t-echo": ("T_ECHO", "nrf52840"), "tracker-t1000-e": ("TRACKER_T1000_E", "nrf52840")}
    assert base64.b16encode(files.UF2_FAMILY_NRF52840.to_bytes(4, "big")) == b"ADA52840"


@pytest.mark.slow
def test_the_uf2_touch_only_happens_once_the_radio_has_given_its_configuration(tmp_path, bench):
    """A touch puts the board in its bootloader: the station must have its key first."""
    _, nrf = bench
    board = nrf("rak4631")
    board.radio.hang()                     # the firmware hangs: it answers nothing
    file = ff.write(tmp_path, f"firmware-rak4631-{NEW}.uf2", ff.uf2(ff.nrf_firmware(NEW)))
    result = flash(tmp_path, board.port.link.as_posix(), file, "--drive", str(tmp_path / "media"))
    assert result.exit_code == 1 and "nothing was written" in result.output
    wait_until(lambda: board.drive is None, 1, what="no bootloader drive")
    assert board.boots == []


@pytest.mark.slow
def test_without_a_port_the_station_radio_is_flashed(tmp_path, bench):
    """No --port: the station's own radio (the daemon would lend its port; here none runs)."""
    esp, _ = bench
    board = esp("heltec-v3", "ESP32-S3")
    config = write_config(tmp_path, board.port.link.as_posix(), tmp_path / "station.db")
    file = ff.write(tmp_path, f"firmware-heltec-v3-{NEW}.bin", ff.esp_app(NEW, chip_id=9))
    result = CliRunner().invoke(cli, ["--config", config, "radio", "flash", str(file), "--yes", "--by", "tech-ana"])
    assert result.exit_code == 0, result.output
    assert "onto the station radio at" in result.output and board.boots == [NEW]


def test_a_bracelet_flashed_to_2_8_keeps_the_battery_reports_the_watch_counts_on(tmp_path, bench):
    """2.8 turns every telemetry broadcast off once, on upgrade (NodeDB.cpp:2600-2616): the flash
    sees that the configuration changed and puts it back, so the bracelet does not fall silent."""
    _, nrf = bench
    board = nrf("rak4631")
    board.radio.boot_image("2.7.26.b1234aa")
    board.radio.module_config.telemetry.device_telemetry_enabled = True        # as the profile set it
    board.radio.module_config.telemetry.device_update_interval = 900
    new = "2.8.0.c0ffee1"
    file = ff.write(tmp_path, f"firmware-rak4631-{new}.uf2", ff.uf2(ff.nrf_firmware(new)))

    result = flash(tmp_path, board.port.link.as_posix(), file, "--drive", str(tmp_path / "media"))

    assert result.exit_code == 0, result.output
    assert "lost part of the configuration: putting it back" in result.output
    assert board.radio.profile.version == new
    assert (board.radio.module_config.telemetry.device_telemetry_enabled,
            board.radio.module_config.telemetry.device_update_interval) == (True, 900)


def test_the_virtual_bracelet_upgrading_to_2_8_loses_its_telemetry_broadcast_as_real_firmware_does():
    radio = VirtualRadio(device="rak4631", node_num=0xB5A1E1FF, firmware="2.7.26")
    radio.module_config.telemetry.device_telemetry_enabled = True
    radio.boot_image("2.7.26.b1234aa")
    assert radio.module_config.telemetry.device_telemetry_enabled            # same line: nothing changes
    radio.boot_image("2.8.0.c0ffee1")
    assert not radio.module_config.telemetry.device_telemetry_enabled
