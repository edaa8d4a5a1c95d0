"""pbxfw.asterisk."""
