"""Flashing Meshtastic firmware a technician brought on a USB stick (no internet): the file is
checked against the board before anything is written, the radio's configuration and key are read
first and put back if the new firmware lost them.

- files.py: what a firmware file is for (board, chip or UF2 family, version), from its name and bytes
- esp.py: ESP32 boards through esptool used as a library (ROM bootloader, no stub)
- uf2.py: nRF52 boards through the UF2 bootloader (1200-baud touch, the INFO_UF2.TXT drive)
- flow.py: the whole job, in the order a careful technician would do it
"""
