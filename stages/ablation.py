"""Stage `report` of the ablation pipeline (placeholder while the arms train)."""
