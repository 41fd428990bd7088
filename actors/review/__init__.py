"""Review: the spec grammar, its precedence, the cross-family reviewer choice and the verdict
format (DESIGN §4.8). Sans-IO throughout; ``orchestrator.review_cli`` does the git and the turn."""
