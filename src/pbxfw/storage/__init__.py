"""pbxfw.storage."""
