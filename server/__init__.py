"""yima server: the Litestar core behind the resident, terminal, developer and operator APIs."""
