"""Running a curation: the plan, the runner, the curate job, its summary and report."""
