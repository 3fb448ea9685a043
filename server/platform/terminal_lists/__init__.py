"""Terminal lists an app holds for the terminals of one staff unit (service.py: `TerminalLists`, the
`terminals.hold` / `terminals.drop` capability) and their SQL (repository.py); terminals sync them at
`GET /v1/terminal/lists` (the terminals' route)."""
