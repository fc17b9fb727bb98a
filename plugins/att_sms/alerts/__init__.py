"""Pages from alerts (Prometheus Alertmanager, Grafana): plain modules, no errbot import.

``payload`` parses and checks a webhook notification, ``routes`` picks the route,
``text`` writes the page text and room lines, ``decide`` says what a notification does to
its alert group, ``intake`` is the HTTP endpoint's logic. See docs/ALERTS.md.
"""
