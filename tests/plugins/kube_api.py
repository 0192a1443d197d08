"""pytest plugin: kube_api fixtures (filled in by the component that needs them)."""
