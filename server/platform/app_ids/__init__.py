"""App id registrations: developer organisations, their namespaces, and ids an operator approved."""
