"""Task kinds: ``<kind>.py`` registers the trainer's task of one kind; ``base.get_task`` imports it on first use."""
