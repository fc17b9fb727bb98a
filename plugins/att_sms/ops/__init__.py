"""Operations: health, metrics and their HTTP server, polling alerts, safe logs, SIGTERM, a short read cache."""
