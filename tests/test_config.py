"""The config file: where it is found, what it may hold, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from station import config

EXAMPLE = Path(__file__).resolve().parent.parent / "station.example.toml"


def test_no_file_means_built_in_defaults_with_one_database_whatever_the_folder(tmp_path, monkeypatch):
    """An office worker who runs `station alerts list` from another folder reads the same
    database as the station, not a new empty one."""
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "absent.toml")
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    seen = set()
    for folder in (tmp_path, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        cfg = config.load(None, environ=env)
        assert cfg.radio["port"] == "auto"
        seen.add(cfg.database_path)
    assert seen == {tmp_path / "data" / "station" / "station.db"}


def test_search_order_is_option_then_environment_then_system_file(tmp_path, monkeypatch):
    system = tmp_path / "system.toml"
    system.write_text("")
    monkeypatch.setattr(config, "SYSTEM_CONFIG", system)
    assert config.find_config_path("given.toml", {"STATION_CONFIG": "env.toml"}) == Path("given.toml")
    assert config.find_config_path(None, {"STATION_CONFIG": "env.toml"}) == Path("env.toml")
    assert config.find_config_path(None, {}) == system


def test_relative_database_path_is_relative_to_the_config_file(tmp_path):
    f = tmp_path / "etc" / "station.toml"
    f.parent.mkdir()
    f.write_text('[storage]\ndatabase = "data/s.db"\n')
    assert config.load(f).database_path == tmp_path / "etc" / "data" / "s.db"


@pytest.mark.parametrize("toml, message", [
    ('[radio]\nport = "COM3"', '[radio] port: expected "auto", "sim", a device path'),
    ('[radio]\nport = true', "[radio] port: expected a string, found True"),
    ('[radio]\nheartbeat_s = -1', "[radio] heartbeat_s: expected a number greater than 0, found -1"),
    ('[radio]\nprot = "/dev/ttyUSB0"', "[radio] prot: unknown key; known keys: port,"),
    ('[radoi]\nport = "sim"', "unknown section [radoi]"),
    ('[gps]\nbaud = 9601', "[gps] baud: expected one of 4800, 9600"),
    ('[gps]\nport = "ttyAMA0"', '[gps] port: expected a device path'),
    ('[alerts]\nkeywords = ["SOS", ""]', "[alerts] keywords: expected a list of non-empty strings"),
    ('[gpio]\nbuzzer = 40', "[gpio] buzzer: expected a BCM GPIO number from 0 to 27, found 40"),
    ('[gpio]\nenabled = "yes"', "[gpio] enabled: expected true, false or \"auto\""),
    ('[radio]\nreconnect_min_s = 60', "[radio] reconnect_min_s: expected at most reconnect_max_s"),
    ('[storage]\nbatch_max = 1.5', "[storage] batch_max: expected an integer, found 1.5"),
    ("[radio", "is not valid TOML"),
])
def test_invalid_config_names_the_key_the_expectation_and_what_was_found(tmp_path, toml, message):
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(config.ConfigError) as e:
        config.load(f)
    assert message in str(e.value)


def test_missing_and_unreadable_files_are_reported(tmp_path):
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")
    f = tmp_path / "latin1.toml"
    f.write_bytes(b'[radio]\nscenario = "\xe9"\n')
    with pytest.raises(config.ConfigError, match="not UTF-8"):
        config.load(f)


def test_example_config_lists_every_key_with_its_default():
    """station.example.toml is documentation; this keeps it true."""
    example = tomllib.loads(EXAMPLE.read_text())
    for section, keys in config.SCHEMA.items():
        assert section in example, f"[{section}] missing from the example"
        for name, key in keys.items():
            assert name in example[section], f"[{section}] {name} missing from the example"
            assert example[section][name] == key.default, f"[{section}] {name} differs from the default"
        assert set(example[section]) == set(keys), f"[{section}] has keys the station does not know"


def test_every_example_key_is_commented():
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), f"no comment above: {line}"
