"""Reader studies run in the web database (#22): studies, readers, sessions, answers; the
analysis is bonebase.stats.mrmc."""
