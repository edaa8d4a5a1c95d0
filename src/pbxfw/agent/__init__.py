"""pbxfw.agent."""
