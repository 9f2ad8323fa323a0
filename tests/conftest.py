pytest_plugins = ["harness.testing"]
