"""The README is a contract: its first two commands, and the commands it lists, must be true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from station.cli import cli

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)\n```", README, re.S)


def test_first_two_commands_set_up_then_run_the_station_and_the_tests():
    run, test = BLOCKS[0].strip(), BLOCKS[1].strip()
    assert run == "./install.sh --dev && .venv/bin/station run"
    assert test == "./install.sh --dev && .venv/bin/python -m pytest"


def test_ci_runs_exactly_the_readme_test_command():
    lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert BLOCKS[1].strip() in lines


@pytest.mark.parametrize("command", sorted(set(re.findall(r"^\| `station ([a-z]+(?: [a-z][a-z-]*)?)", README, re.M))))
def test_every_command_in_the_readme_exists(command):
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output


def test_every_scenario_in_the_readme_exists_and_none_is_missing():
    from station.radio.virtual.scenarios import SCENARIOS
    listed = re.search(r"Scenarios \(.*?\): (.*?)\.\n\n", README, re.S).group(1)
    names = set(re.findall(r"`([a-z0-9-]+)`", listed))
    assert names == set(SCENARIOS)


@pytest.mark.parametrize("usage", re.findall(r"`(station [^`]*)`", "\n".join(
    line.split(" | ")[0] for line in README.splitlines() if line.startswith("| `station "))))
def test_every_option_the_readme_gives_a_command_is_in_its_help(usage):
    # A technician copies options from this table; one the command does not take is a dead end.
    command = re.match(r"station ([a-z]+(?: [a-z][a-z-]*)?)", usage).group(1)
    help_text = CliRunner().invoke(cli, [*command.split(), "--help"]).output
    for option in set(re.findall(r"(--[a-z][a-z-]*)", usage)):
        assert option in help_text, f"station {command} has no {option}"


BRACELET_GUIDE = (REPO / "hardware" / "bracelets.md").read_text()


@pytest.mark.parametrize("line", [ln.split("#")[0].strip() for block in re.findall(r"```sh\n(.*?)```", BRACELET_GUIDE, re.S)
                                  for ln in block.splitlines() if ln.startswith("station ")])
def test_every_station_command_in_the_bracelet_guide_exists_with_its_options(line):
    # A technician types these on the bench; a command or option that does not exist strands them.
    command = re.match(r"station ([a-z]+(?: [a-z][a-z-]*)?)", line).group(1)
    help_text = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert help_text.exit_code == 0, line
    for option in re.findall(r"(--[a-z][a-z-]*)", line):
        assert option in help_text.output, f"{line}: no {option}"
