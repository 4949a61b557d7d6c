"""Execute of the dataset node families (nodes/datasets/*), one module per family module."""
