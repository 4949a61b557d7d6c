"""`comfyless test`: re-run workflows and compare their outputs with recorded golden ones."""
