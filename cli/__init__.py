"""`observatory`: the operator's command line."""
