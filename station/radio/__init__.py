"""The radio: the meshtastic library behind a supervisor, and a virtual radio for demos and tests."""
