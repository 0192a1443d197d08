"""pytest plugin: s3_server fixtures (filled in by the component that needs them)."""
