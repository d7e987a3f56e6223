"""The transport-agnostic core: the scorer, its JSON answers, bearer tokens, offline scoring."""
