"""Members: enrolment, identifiers, profile, status."""
