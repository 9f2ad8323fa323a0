"""harness/e2e"""
