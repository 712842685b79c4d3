"""Task kinds. `kinds.py` imports every task module (which registers it); `base.get_task` loads it lazily."""
