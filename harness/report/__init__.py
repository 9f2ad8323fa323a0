"""harness/report: pandas tables and matplotlib plots into one self-contained HTML page."""

from harness.report.page import write_report, write_sim_vs_real

__all__ = ["write_report", "write_sim_vs_real"]
