"""Where app code runs: the live view of released versions and the sandbox host (service.py: `Runtime`),
app-scoped ids and release buckets (ids.py), the capability provider a sandboxed app calls (capabilities.py) and
scan events delivered to the app bound to a scene (events.py). No routes, no tables of its own: it reads the
registry through `apps.repository` and writes what residents hold through `residents.repository`."""
