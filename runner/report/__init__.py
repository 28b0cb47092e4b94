"""The run report: ``<results_path>/report.html`` (metric table, curves, galleries) and its per-class data."""
from runner.report.class_data import dataset_images, read_class_data, write_class_data
from runner.report.page import write_predict_report, write_report

__all__ = ["dataset_images", "read_class_data", "write_class_data", "write_predict_report", "write_report"]
