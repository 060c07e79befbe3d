"""The running service: wiring, supervision, reloads, systemd notification."""
