"""Task exporters: ``<kind>.py`` registers the exporter of one kind; ``base.get_exporter`` imports it on first use."""
