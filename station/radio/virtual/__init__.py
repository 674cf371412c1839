"""A virtual Meshtastic radio: the device side of the stream protocol, for demos and tests."""
