"""One router per resource: members' offers, the served model, health."""
