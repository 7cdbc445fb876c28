"""What every layer shares and nothing else: the error types, atomic file writes and the
command-line composition of typed configs. It imports no other package of the lab (and no torch)."""
