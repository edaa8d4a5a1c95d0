"""pbxfw: firewall and intrusion-prevention manager for Asterisk-based PBXs."""

__all__ = ["__version__"]

__version__ = "0.1.0"
