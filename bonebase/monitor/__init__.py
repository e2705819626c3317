"""Champion watch (#23): the deployed model's performance on each new submission, input drift
and alerts."""
