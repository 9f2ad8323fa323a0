"""harness/sim"""
