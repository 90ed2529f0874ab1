"""Layer 4, applications: what runs inside a guest (a web server, a database, an API)."""
