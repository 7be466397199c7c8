"""Data layer: readers and validators for CT-RATE, the AdaRAG-CT bundle and VLM3D; organ sentences; demo cohort."""
