"""pbxfw.domain."""
