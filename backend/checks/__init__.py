"""Pre- and post-deployment validation: scored checks, go/no-go, JSON report."""
