"""pytest plugin: live_server fixtures (filled in by the component that needs them)."""
