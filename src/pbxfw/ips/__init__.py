"""pbxfw.ips."""
