"""Field base station for Meshtastic alarm bracelets."""

__version__ = "0.1.0"
