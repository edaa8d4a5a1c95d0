"""pbxfw.web."""
