"""pbxfw.kernel."""
