"""Pieces shared by both methods: frozen backbone, errors, atomic writes, device and seed handling."""
