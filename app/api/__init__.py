"""HTTP in: routing, validation, authentication and RFC 9457 problem details."""
