"""Use cases: what the API asks of the gateway, on the domain and through its ports."""
