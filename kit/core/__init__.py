"""The ground floor: errors, input checks, paths, the kit loop, and a guest's state.

Everything else imports from here; nothing here imports the rest of the kit."""
